"""Sending an edition to real subscribers through a real aiosmtpd server with faults."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select, update

from newsletter.core.config import Settings, ThemeSettings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError
from newsletter.delivery.outbox import OutboxRow, state_counts
from newsletter.delivery.send import finish_if_done, prepare_send, recipient_count, send_edition
from newsletter.editions.lifecycle import get_edition
from subscribers.addresses import keyed_hash
from subscribers.management import ListManagement
from subscribers.models import ConsentEvent, Subscriber, Suppression
from tests.support.clock import FixedClock
from tests.support.databases import statement_sent
from tests.support.sending import STAFF, add_subscribers
from tests.support.smtpserver import TestSmtpServer
from tests.support.waiting import TIMEOUT_UNDER_TEST_SECONDS, joined, wait_until


def test_everyone_gets_exactly_one_copy(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 25)
    assert recipient_count(db, edition) == 25
    summary = send_edition(settings, db, edition, clock=clock)
    assert summary.finished and summary.counts.sent == 25 and summary.run.sent == 25
    assert sorted(smtp_server.delivered_to()) == sorted(addresses)
    with db.session() as session:
        assert get_edition(session, edition).state == "sent"
        rows = session.scalars(select(OutboxRow)).all()
        assert {(row.state, row.sent_at, row.attempts, row.claim) for row in rows} == {
            ("sent", clock(), 1, None)
        }
    # Message-IDs are unique per subscriber.
    ids = [message["Message-ID"] for message in smtp_server.messages()]
    assert len(set(ids)) == 25
    # Sending again mails nobody and says how it went.
    again = send_edition(settings, db, edition, clock=clock)
    assert again.finished and again.run.sent == 0 and again.counts.sent == 25
    assert len(smtp_server.received) == 25


def test_the_message_carries_list_headers_and_personal_links(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    add_subscribers(settings, db, clock, 1)
    send_edition(settings, db, edition, clock=clock)
    message = smtp_server.messages()[0]
    unsubscribe = message["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/")
    assert "mailto:" in unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Radicale vernieuwing jeugdzorg <nieuwsbrief.rvjeugdzorg.nl>"
    url = unsubscribe.split(">")[0].lstrip("<")
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    assert url in html.get_content() and url in text.get_content()
    assert "Eerste opbrengsten verkenning Radicale vernieuwing jeugdzorg" in html.get_content()


def test_temporary_failures_wait_and_go_out_later(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 6)
    smtp_server.faults.data[addresses[2]].append("451 4.3.0 try again later")
    first = send_edition(settings, db, edition, clock=clock)
    assert (first.counts.sent, first.counts.retry, first.finished) == (5, 1, False)
    with db.session() as session:
        assert get_edition(session, edition).state == "sending"
    # Not due yet: a rerun now sends nothing.
    again = send_edition(settings, db, edition, clock=clock.later(minutes=1))
    assert again.run.sent == 0 and again.counts.retry == 1
    later = send_edition(settings, db, edition, clock=clock.later(minutes=10))
    assert later.finished and later.counts.sent == 6
    assert Counter(smtp_server.delivered_to()) == Counter(addresses)


def test_temporary_failures_give_up_at_the_deadline(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    [address] = add_subscribers(settings, db, clock, 1)
    smtp_server.faults.rcpt[address] = "450 4.2.1 mailbox busy"
    send_edition(settings, db, edition, clock=clock)
    for _ in range(30):
        summary = send_edition(settings, db, edition, clock=clock.later(hours=2))
        if summary.finished:
            break
    assert summary.finished and summary.counts.failed == 1
    with db.session() as session:
        row = session.scalars(select(OutboxRow)).one()
        assert row.last_reply is not None and "gave up after 24 h" in row.last_reply
        # A temporary failure is no bounce: the subscriber stays on the list.
        assert session.scalars(select(Subscriber.status)).one() == "confirmed"


def test_permanent_failure_bounces_and_suppresses(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 3)
    smtp_server.faults.rcpt[addresses[1]] = f"550 5.1.1 <{addresses[1]}>: no such user"
    summary = send_edition(settings, db, edition, clock=clock)
    assert summary.finished
    assert (summary.counts.sent, summary.counts.failed) == (2, 1)
    assert summary.run.failures == [f"{addresses[1]}: 550 5.1.1 <{addresses[1]}>: no such user"]
    with db.session() as session:
        statuses = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert statuses[addresses[1]] == "bounced"
        assert session.scalars(select(Suppression.reason)).all() == ["bounced"]
        [event] = session.scalars(select(ConsentEvent).where(ConsentEvent.event == "bounced"))
        assert event.details is not None
        assert event.details["reply"] == "550 5.1.1 <(address)>: no such user"


def test_dropped_connection_and_421_resend_without_loss(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 8)
    smtp_server.faults.drop_in_data.add(addresses[3])
    smtp_server.faults.mail_reply.append("421 4.3.2 too busy, come back")
    summary = send_edition(settings, db, edition, clock=clock)
    assert summary.finished and summary.counts.sent == 8
    assert sorted(set(smtp_server.delivered_to())) == sorted(addresses)
    assert smtp_server.mail_inside_mail == 0


def test_a_stalling_server_times_out_and_the_message_waits(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 2)
    # The first message to this address is never answered: only the timeout ends that
    # attempt; the message then goes again or waits for a retry.
    smtp_server.hold(addresses[0])
    timeout = {"timeout_seconds": TIMEOUT_UNDER_TEST_SECONDS}
    impatient = settings.model_copy(update={"smtp": settings.smtp.model_copy(update=timeout)})
    summary = send_edition(impatient, db, edition, clock=clock)
    assert summary.counts.sent + summary.counts.retry == 2
    assert addresses[1] in smtp_server.delivered_to()


def test_unreachable_server_leaves_everything_waiting(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    add_subscribers(settings, db, clock, 4)
    smtp_server.stop()
    with pytest.raises(DeliveryError, match="cannot connect to SMTP server"):
        send_edition(settings, db, edition, clock=clock)
    with db.session() as session:
        counts = state_counts(session, edition)
    assert counts.open == 4 and counts.sent == 0 and counts.failed == 0
    # Given back as waiting, not left looking as if another run were sending them.
    assert counts.pending == 4 and counts.sending == 0


def test_someone_who_leaves_during_the_send_is_skipped(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 3)
    # The snapshot is taken, then the server refuses everyone for a while...
    for address in addresses:
        smtp_server.faults.rcpt[address] = "451 4.7.1 greylisted"
    send_edition(settings, db, edition, clock=clock)
    # ...and one of them unsubscribes before the retry.
    ListManagement(settings, db, clock=clock).remove(addresses[0], STAFF)
    smtp_server.faults.rcpt.clear()
    summary = send_edition(settings, db, edition, clock=clock.later(minutes=10))
    assert summary.finished
    assert (summary.counts.sent, summary.counts.skipped) == (2, 1)
    assert addresses[0] not in smtp_server.delivered_to()


def test_theme_choices_get_only_their_articles_and_none_get_no_mail(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    add_subscribers(settings, db, clock, 2, themes=("mensen-en-initiatieven",))
    ListManagement(settings, db, clock=clock).add(
        "alles@example.org",
        name=None,
        themes=[],
        requester=STAFF,
        confirmed=True,
        consent_note="paper form",
    )
    summary = send_edition(settings, db, edition, clock=clock)
    assert summary.finished and summary.counts.sent == 3
    by_address = {m["To"]: m.get_body(("plain",)).get_content() for m in smtp_server.messages()}  # type: ignore[union-attr]
    themed = by_address["lezer0@example.org"]
    assert "Nieuw onderzoek jeugdbescherming vraagt om actie" in themed
    assert "Eerste opbrengsten verkenning" not in themed
    assert "Eerste opbrengsten verkenning" in by_address["alles@example.org"]


def test_the_outbox_keeps_why_not_who_and_show_lists_deliveries(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 2)
    smtp_server.faults.rcpt[addresses[0]] = f"550 5.1.1 <{addresses[0]}>: unknown"
    send_edition(settings, db, edition, clock=clock)
    with db.session() as session:
        replies = session.scalars(select(OutboxRow.last_reply)).all()
    assert all(addresses[0] not in (reply or "") for reply in replies)
    shown = ListManagement(settings, db, clock=clock).show(addresses[1])
    assert [(d.edition, d.state) for d in shown.deliveries] == [(edition, "sent")]


def test_finishing_waits_for_a_sender_adding_a_late_subscriber(
    settings: Settings, db: Database, clock: FixedClock, edition: int
) -> None:
    # Two senders of one edition: one adds a subscriber who confirmed late (its snapshot
    # holds the edition locked) while the other finds nothing open and would mark the
    # edition sent. The second must wait and then see the new row.
    add_subscribers(settings, db, clock, 1)
    prepare_send(settings, db, edition, now=clock())
    with db.session() as session:
        session.execute(update(OutboxRow).values(state="sent", sent_at=clock()))
    [late] = add_subscribers(settings, db, clock, 1, first=1)
    holding, finished = threading.Event(), threading.Event()
    outcome: list[bool] = []

    def finish() -> None:
        holding.wait()
        outcome.append(finish_if_done(db, edition, now=clock())[1])
        finished.set()

    finisher = threading.Thread(target=finish)
    finisher.start()
    with db.session() as session:
        get_edition(session, edition, lock=True)
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == late)).one()
        session.add(
            OutboxRow(
                edition_id=edition,
                subscriber_id=subscriber.id,
                variant="*",
                state="pending",
                created_at=clock(),
                updated_at=clock(),
            )
        )
        session.flush()
        # Its first statement takes the edition's lock: once it is sent, the other sender
        # is at the lock while this transaction holds it.
        with statement_sent(db, by=finisher) as asked:
            holding.set()
            wait_until(asked.is_set, what="the other sender to ask for the edition's lock")
        assert not finished.wait(0.5)  # held back while this transaction is open
    joined(finisher, what="the other sender")
    assert outcome == [False]
    with db.session() as session:
        assert get_edition(session, edition).state == "sending"
        assert state_counts(session, edition).pending == 1


def _snapshot(settings: Settings, db: Database, clock: FixedClock, edition: int) -> dict[str, Any]:
    prepare_send(settings, db, edition, now=clock())
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, OutboxRow.variant, OutboxRow.state, OutboxRow.last_reply)
            .join(Subscriber, Subscriber.id == OutboxRow.subscriber_id)
            .where(OutboxRow.edition_id == edition)
        )
        return {email: (variant, state, reply) for email, variant, state, reply in rows}


def _add_with_themes(settings: Settings, db: Database, clock: FixedClock, **people: Any) -> None:
    management = ListManagement(settings, db, clock=clock)
    for name, themes in people.items():
        management.add(
            f"{name}@example.org",
            name=None,
            themes=themes,
            requester=STAFF,
            confirmed=True,
            consent_note="paper form",
        )


def test_the_snapshot_gives_each_theme_set_its_variant_and_skips_sets_without_articles(
    settings: Settings, db: Database, clock: FixedClock, edition: int
) -> None:
    agenda = ThemeSettings(name="Agenda", categories=["Agenda"], description="Wat er komt.")
    with_agenda = settings.model_copy(update={"themes": {**settings.themes, "agenda": agenda}})
    _add_with_themes(
        with_agenda,
        db,
        clock,
        a=["mensen-en-initiatieven", "doe-je-mee"],
        b=["doe-je-mee", "mensen-en-initiatieven"],  # the same choice in another order
        c=["agenda"],  # no article of this edition is about it
        d=[],
    )
    assert _snapshot(with_agenda, db, clock, edition) == {
        "a@example.org": ("mensen-en-initiatieven,doe-je-mee", "pending", None),
        "b@example.org": ("mensen-en-initiatieven,doe-je-mee", "pending", None),
        "c@example.org": ("agenda", "skipped", "no article in their themes"),
        "d@example.org": ("*", "pending", None),
    }


def test_a_theme_no_longer_in_the_settings_counts_as_every_theme(
    settings: Settings, db: Database, clock: FixedClock, edition: int
) -> None:
    agenda = ThemeSettings(name="Agenda", categories=["Agenda"], description="Wat er komt.")
    with_agenda = settings.model_copy(update={"themes": {**settings.themes, "agenda": agenda}})
    _add_with_themes(with_agenda, db, clock, c=["agenda"], e=["agenda", "doe-je-mee"])
    assert _snapshot(settings, db, clock, edition) == {
        "c@example.org": ("*", "pending", None),
        "e@example.org": ("doe-je-mee", "pending", None),
    }


def test_a_snapshot_run_again_adds_only_who_is_new_and_keeps_the_rest(
    settings: Settings, db: Database, clock: FixedClock, edition: int
) -> None:
    add_subscribers(settings, db, clock, 3)
    first = _snapshot(settings, db, clock, edition)
    with db.session() as session:
        session.execute(update(OutboxRow).values(state="sent"))
    add_subscribers(settings, db, clock, 2, first=3)
    second = _snapshot(settings, db, clock, edition)
    assert len(first) == 3 and len(second) == 5
    assert sorted(state for _v, state, _r in second.values()) == ["pending"] * 2 + ["sent"] * 3


def test_a_confirmed_address_on_the_suppression_list_is_not_mailed(
    settings: Settings, db: Database, clock: FixedClock, edition: int, smtp_server: TestSmtpServer
) -> None:
    addresses = add_subscribers(settings, db, clock, 3)
    secret = settings.require_secret_key()
    with db.session() as session:  # suppressed while still confirmed (say, by hand)
        session.add(
            Suppression(
                address_hash=keyed_hash(addresses[1], secret),
                reason="complained",
                created_at=clock(),
            )
        )
    summary = send_edition(settings, db, edition, clock=clock)
    assert summary.finished and (summary.counts.sent, summary.counts.skipped) == (2, 1)
    assert sorted(m["To"] for m in smtp_server.messages()) == [addresses[0], addresses[2]]
    with db.session() as session:
        assert session.scalars(
            select(OutboxRow.last_reply).where(OutboxRow.state == "skipped")
        ).all() == ["on the suppression list"]
