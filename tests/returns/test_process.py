"""The return mailbox processed end to end: a real Maildir on disk, a real database, and a
corpus of bounce formats (tests/data/bounces/, see tests/support/returns.py), each ending
in the right subscriber state."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.returns.classify import MAX_DEPTH, MAX_MESSAGE_BYTES, MAX_PARTS
from newsletter.returns.mailboxes import (
    IncomingMessage,
    MailboxError,
    MaildirMailbox,
    open_return_mailbox,
)
from newsletter.returns.process import BounceReport, ReturnMessage, process_return_mailbox
from subscribers.bounces import SoftBounce
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import ConsentEvent, Subscriber
from subscribers.tokens import link_token
from tests.support.clock import FixedClock
from tests.support.dovecot import PASSWORD, SERVER_NAME, USER, running_dovecot
from tests.support.returns import (
    CORPUS,
    RETURN_PATH,
    SENDER,
    add_edition,
    many_parts_message,
    nested_parts_message,
    render,
)
from tests.support.subscribers import SECRET, events_of, status_of, suppression_of
from tests.support.tls import TestCa

PEOPLE = {
    "anouk": "anouk@example.org",
    "bram": "bram@example.net",
    "carla": "carla@example.com",
    "daan": "daan@example.nl",
}
STAFF = Requester(source="cli")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        sender={"from": SENDER},
        delivery={"return_path": RETURN_PATH, "verp": True},
        bounces={"maildir": "returns"},
    )


@pytest.fixture
def maildir(settings: Settings) -> Iterator[mailbox.Maildir]:
    box = mailbox.Maildir(settings.base_dir / "returns", create=True)
    yield box
    box.close()


@dataclass
class World:
    """Four confirmed subscribers and one sent edition, as the corpus expects them."""

    settings: Settings
    db: Database
    clock: FixedClock
    maildir: mailbox.Maildir
    public_ids: dict[str, str]
    edition: int

    def deliver(self, name: str, *, edition: int | None = None) -> bytes:
        raw = render(name, self.public_ids, edition=edition or self.edition)
        if edition is not None:
            # A report about another edition is another message, with its own Message-ID.
            raw = re.sub(rb"(?im)^(Message-Id: *<)", rb"\1e%d." % edition, raw, count=1)
        self.maildir.add(raw)
        return raw

    def process(self) -> BounceReport:
        box = MaildirMailbox(self.settings.base_dir / "returns")
        try:
            return process_return_mailbox(self.settings, self.db, mailbox=box, clock=self.clock)
        finally:
            box.close()

    def folder(self, name: str) -> list[bytes]:
        path = self.settings.base_dir / "returns" / f".{name}"
        if not path.exists():
            return []
        box = mailbox.Maildir(path, create=False)
        return sorted(box.get_bytes(key) for key in box.iterkeys())

    def inbox(self) -> list[str]:
        return list(mailbox.Maildir(self.settings.base_dir / "returns", create=False).keys())


@pytest.fixture
def world(settings: Settings, db: Database, clock: FixedClock, maildir: mailbox.Maildir) -> World:
    people = ListManagement(settings, db, clock=clock)
    for email in PEOPLE.values():
        people.add(
            email,
            name=None,
            themes=[],
            requester=STAFF,
            confirmed=True,
            consent_note="signed up at the action day",
        )
    with db.session() as session:
        rows = session.execute(select(Subscriber.email, Subscriber.public_id, Subscriber.id)).all()
    by_email = {email: (public_id, subscriber_id) for email, public_id, subscriber_id in rows}
    public_ids = {name: by_email[email][0] for name, email in PEOPLE.items()}
    edition = add_edition(db, clock, [subscriber_id for _, subscriber_id in by_email.values()])
    clock.advance(hours=1)
    return World(settings, db, clock, maildir, public_ids, edition)


def states(world: World) -> dict[str, tuple[str | None, str | None, list[str]]]:
    """Per person: status, suppression reason, consent-log events after being added."""
    result = {}
    for name, email in PEOPLE.items():
        events = events_of(world.db, email)
        assert events[0] == "added_by_staff"
        result[name] = (status_of(world.db, email), suppression_of(world.db, email), events[1:])
    return result


UNTOUCHED = ("confirmed", None, [])

# file, what the report counts it as, and what becomes of Anouk (everyone else untouched).
CORPUS_CASES = [
    ("rfc3464-dsn.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("postfix.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("exim.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("gmail.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("outlook.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("qmail.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("temporary-dsn.eml", "temporary", ("confirmed", None, ["soft_bounced"])),
    # Without VERP: our signed Message-ID and unsubscribe token in the returned headers.
    ("postfix-headers-only.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("postfix-delay-headers-only.eml", "temporary", ("confirmed", None, ["soft_bounced"])),
    ("expired-dsn.eml", "temporary", ("confirmed", None, ["soft_bounced"])),
    ("arf-abuse.eml", "complaints", ("complained", "complained", ["complained"])),
    ("arf-abuse-headers-only.eml", "complaints", ("complained", "complained", ["complained"])),
    ("mailto-unsubscribe.eml", "unsubscribes", ("unsubscribed", "unsubscribed", ["unsubscribed"])),
    ("mailto-unsubscribe-forged.eml", "not_understood", UNTOUCHED),
    ("dsn-quoting-others.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("dsn-quoting-others-without-verp.eml", "not_understood", UNTOUCHED),
    # A VERP address we did not sign, but Anouk's signed Message-ID in the original.
    ("forged-verp.eml", "permanent", ("bounced", "bounced", ["bounced"])),
    ("garbage.eml", "not_understood", UNTOUCHED),
    ("human-reply.eml", "not_understood", UNTOUCHED),
    ("auto-reply.eml", "not_understood", UNTOUCHED),
]


def test_the_corpus_covers_every_file() -> None:
    assert {case[0] for case in CORPUS_CASES} == {path.name for path in CORPUS.glob("*.eml")}


@pytest.mark.parametrize(("name", "counted_as", "anouk"), CORPUS_CASES)
def test_each_format_ends_in_the_right_state(
    world: World, name: str, counted_as: str, anouk: tuple[str, str | None, list[str]]
) -> None:
    raw = world.deliver(name)
    report = world.process()
    assert report.messages == 1
    assert getattr(report, counted_as) == 1, report
    assert states(world) == {
        "anouk": anouk,
        "bram": UNTOUCHED,
        "carla": UNTOUCHED,
        "daan": UNTOUCHED,
    }
    # Filed, byte for byte, never deleted; the inbox is empty.
    understood = counted_as != "not_understood"
    assert world.folder("handled" if understood else "unknown") == [raw]
    assert world.folder("unknown" if understood else "handled") == []
    assert world.inbox() == []
    assert report.suppressed == (1 if anouk[1] else 0)


def consent_details(world: World, email: str, event: str) -> dict[str, object]:
    from subscribers.addresses import keyed_hash

    with world.db.session() as session:
        [row] = session.scalars(
            select(ConsentEvent).where(
                ConsentEvent.subject_hash == keyed_hash(email, SECRET), ConsentEvent.event == event
            )
        )
        assert row.details is not None
        return dict(row.details)


def test_the_consent_log_keeps_the_reason_without_addresses(world: World) -> None:
    world.deliver("postfix.eml")
    world.process()
    details = consent_details(world, PEOPLE["anouk"], "bounced")
    assert details["via"] == "dsn"
    assert details["edition"] == world.edition
    assert details["status_changed"] is True
    assert details["reply"] == (
        "permanent failure, status 5.1.1: 550 5.1.1 (address): Recipient address "
        "rejected: User unknown in virtual mailbox table"
    )


def test_a_dsn_quoting_other_subscribers_hits_only_the_verp_subscriber(world: World) -> None:
    # The returned original names Bram, Carla and Daan in its headers and body, carries
    # Bram's Message-ID, Carla's unsubscribe link and even Bram's VERP address.
    world.deliver("dsn-quoting-others.eml")
    world.deliver("dsn-quoting-others-without-verp.eml")
    report = world.process()
    assert (report.permanent, report.not_understood) == (1, 1)
    assert report.reasons == {"a bounce whose returned original names two subscribers": 1}
    assert states(world)["anouk"][0] == "bounced"
    assert {name: state for name, state in states(world).items() if name != "anouk"} == {
        "bram": UNTOUCHED,
        "carla": UNTOUCHED,
        "daan": UNTOUCHED,
    }


def test_without_verp_the_signed_values_of_the_returned_original_tie_the_bounce(
    world: World,
) -> None:
    # On default settings ([delivery] verp off) the report goes to the plain return
    # path; what ties it to Anouk is her copy's Message-ID and unsubscribe token, which
    # only we can make. The same DSN without them, or with someone else's, ties nobody.
    world.settings = world.settings.model_copy(
        update={"delivery": world.settings.delivery.model_copy(update={"verp": False})}
    )
    world.deliver("postfix-headers-only.eml")
    report = world.process()
    assert (report.permanent, report.suppressed) == (1, 1)
    assert states(world)["anouk"] == ("bounced", "bounced", ["bounced"])
    assert consent_details(world, PEOPLE["anouk"], "bounced")["edition"] == world.edition


def test_a_returned_original_with_forged_signed_values_ties_nobody(world: World) -> None:
    raw = render("postfix-headers-only.eml", world.public_ids, edition=world.edition)
    forged_id = re.sub(rb"(Message-ID: <\d+\.)[0-9a-f]{24}", rb"\g<1>" + b"0" * 24, raw)
    token = link_token(SECRET, "unsubscribe", world.public_ids["anouk"]).encode()
    forged = forged_id.replace(token, world.public_ids["anouk"].encode() + b"." + b"Q" * 22)
    world.maildir.add(forged)
    report = world.process()
    assert report.not_understood == 1
    assert states(world)["anouk"] == UNTOUCHED


def test_processing_the_same_message_twice_counts_it_once(world: World) -> None:
    # Two copies of one delay report (a second delivery, or a copy put back by hand).
    world.deliver("temporary-dsn.eml")
    world.deliver("temporary-dsn.eml")
    report = world.process()
    assert (report.temporary, report.already_handled) == (1, 1)
    assert len(world.folder("handled")) == 2
    assert states(world)["anouk"] == ("confirmed", None, ["soft_bounced"])
    with world.db.session() as session:
        assert len(session.scalars(select(SoftBounce)).all()) == 1
        assert len(session.scalars(select(ReturnMessage)).all()) == 1


class CrashingMailbox(MaildirMailbox):
    """A Maildir whose filing fails once: the process died after acting, before filing."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failed = False

    def file_handled(self, message: IncomingMessage) -> None:
        if not self.failed:
            self.failed = True
            raise MailboxError("disk full")
        super().file_handled(message)


def test_a_run_that_stopped_before_filing_is_not_counted_twice(world: World) -> None:
    world.deliver("expired-dsn.eml")
    crashing = CrashingMailbox(world.settings.base_dir / "returns")
    with pytest.raises(MailboxError, match="disk full"):
        process_return_mailbox(world.settings, world.db, mailbox=crashing, clock=world.clock)
    assert len(world.inbox()) == 1  # still there: nothing is lost
    report = world.process()
    assert (report.messages, report.temporary, report.already_handled) == (1, 0, 1)
    assert states(world)["anouk"] == ("confirmed", None, ["soft_bounced"])
    assert world.inbox() == []


def test_temporary_failures_in_three_editions_within_30_days_suppress(world: World) -> None:
    with world.db.session() as session:
        ids = list(session.scalars(select(Subscriber.id)))
    second = add_edition(world.db, world.clock, ids)
    third = add_edition(world.db, world.clock, ids)
    world.deliver("temporary-dsn.eml", edition=world.edition)
    world.process()
    world.clock.advance(days=7)
    world.deliver("temporary-dsn.eml", edition=second)
    world.deliver("expired-dsn.eml", edition=second)  # the same edition again: no count
    world.process()
    assert states(world)["anouk"] == ("confirmed", None, ["soft_bounced"] * 3)
    world.clock.advance(days=7)
    world.deliver("temporary-dsn.eml", edition=third)
    report = world.process()
    assert (report.temporary, report.suppressed) == (1, 1)
    assert states(world)["anouk"] == ("bounced", "bounced", ["soft_bounced"] * 4 + ["bounced"])
    details = consent_details(world, PEOPLE["anouk"], "bounced")
    assert details["via"] == "soft_bounce_limit"
    assert details["reply"] == "temporary failures in 3 editions within 30 days (limit 3)"


def test_temporary_failures_outside_the_window_do_not_add_up(world: World) -> None:
    with world.db.session() as session:
        ids = list(session.scalars(select(Subscriber.id)))
    editions = [world.edition, add_edition(world.db, world.clock, ids)]
    editions.append(add_edition(world.db, world.clock, ids))
    for edition in editions:
        world.deliver("temporary-dsn.eml", edition=edition)
        world.process()
        world.clock.advance(days=16)
    assert states(world)["anouk"] == ("confirmed", None, ["soft_bounced"] * 3)
    assert consent_details_list(world, "soft_bounced") == [1, 2, 2]


def consent_details_list(world: World, event: str) -> list[object]:
    from subscribers.addresses import keyed_hash

    with world.db.session() as session:
        rows = session.scalars(
            select(ConsentEvent)
            .where(
                ConsentEvent.subject_hash == keyed_hash(PEOPLE["anouk"], SECRET),
                ConsentEvent.event == event,
            )
            .order_by(ConsentEvent.id)
        )
        return [row.details["in_window"] for row in rows if row.details]


def test_a_bounce_for_someone_who_left_keeps_their_status_and_is_logged(world: World) -> None:
    unsubscribe = link_token(SECRET, "unsubscribe", world.public_ids["anouk"])
    assert SubscriberFlows(world.settings, world.db, clock=world.clock).unsubscribe(
        unsubscribe, STAFF
    )
    world.deliver("gmail.eml")
    world.deliver("arf-abuse.eml")
    world.deliver("mailto-unsubscribe.eml")
    report = world.process()
    assert (report.permanent, report.complaints, report.unsubscribes) == (1, 1, 1)
    assert report.suppressed == 0
    assert states(world)["anouk"] == (
        "unsubscribed",
        "unsubscribed",
        ["unsubscribed", "bounced", "complained"],
    )
    assert consent_details(world, PEOPLE["anouk"], "complained")["status_changed"] is False


def test_the_mailto_unsubscribe_is_logged_as_the_persons_own_request(world: World) -> None:
    world.deliver("mailto-unsubscribe.eml")
    world.process()
    with world.db.session() as session:
        [event] = session.scalars(select(ConsentEvent).where(ConsentEvent.event == "unsubscribed"))
        assert event.source == "mail"
        assert event.details == {
            "reason": "unsubscribe request by mail to the List-Unsubscribe address"
        }


def test_a_complaint_identified_by_message_id_needs_the_edition_to_match(world: World) -> None:
    # The same complaint, but for an edition Anouk never got: nobody is hit.
    with world.db.session() as session:
        bram = session.scalar(select(Subscriber.id).where(Subscriber.email == PEOPLE["bram"]))
    assert bram is not None
    other = add_edition(world.db, world.clock, [bram])
    world.deliver("arf-abuse-headers-only.eml", edition=other)
    report = world.process()
    assert report.not_understood == 1
    assert report.reasons == {
        "about a message whose Message-ID matches no recipient of its edition": 1
    }
    assert states(world)["anouk"] == UNTOUCHED
    assert states(world)["bram"] == UNTOUCHED


def test_a_bounce_for_an_erased_subscriber_is_set_aside(world: World) -> None:
    ListManagement(world.settings, world.db, clock=world.clock).erase(PEOPLE["anouk"], STAFF)
    raw = world.deliver("postfix.eml")
    report = world.process()
    assert report.not_understood == 1
    assert world.folder("unknown") == [raw]


def test_a_forged_verp_token_with_nothing_signed_asks_for_a_probe_only(world: World) -> None:
    raw = render("forged-verp.eml", world.public_ids, edition=world.edition)
    raw = re.sub(rb"(?m)^Message-ID: .*\n", b"", raw)
    raw = re.sub(rb"(?m)^List-Unsubscribe: .*\n(?: .*\n)?", b"", raw)
    world.maildir.add(raw)
    report = world.process()
    assert (report.probed, report.permanent, report.suppressed) == (1, 0, 0)
    assert states(world)["anouk"] == ("confirmed", None, ["probe_requested"])


def test_messages_too_large_or_of_too_many_parts_are_set_aside_and_the_rest_is_read(
    world: World,
) -> None:
    many = many_parts_message(40_000)
    world.maildir.add(many)
    bounce = world.deliver("postfix.eml")
    deep = nested_parts_message(MAX_DEPTH + 1)
    world.maildir.add(deep)
    huge = b"Subject: Undelivered Mail\n\n" + b"x" * MAX_MESSAGE_BYTES
    world.maildir.add(huge)
    report = world.process()
    assert (report.messages, report.permanent, report.not_understood) == (4, 1, 3)
    assert report.reasons == {
        f"more than {MAX_PARTS} MIME parts: too many to be a bounce": 1,
        f"MIME parts nested more than {MAX_DEPTH} deep: too deep to be a bounce": 1,
        "too large to be a bounce": 1,
    }
    assert states(world)["anouk"] == ("bounced", "bounced", ["bounced"])
    # Set aside whole for a person, not lost; the inbox is empty.
    assert world.folder("unknown") == sorted([many, deep, huge])
    assert world.folder("handled") == [bounce]
    assert world.inbox() == []


def test_an_empty_mailbox_reports_nothing(world: World) -> None:
    assert world.process() == BounceReport()


def test_the_same_processing_runs_on_an_imap_mailbox(
    world: World, tmp_path: Path, test_ca: TestCa
) -> None:
    with running_dovecot(tmp_path / "dovecot", test_ca) as server:
        server.deliver(render("outlook.eml", world.public_ids, edition=world.edition))
        server.deliver(render("human-reply.eml", world.public_ids, edition=world.edition))
        settings = world.settings.model_copy(
            update={
                "bounces": world.settings.bounces.model_copy(
                    update={
                        "imap_host": "127.0.0.1",
                        "imap_port": server.imap_port,
                        "imap_security": "starttls",
                        "imap_tls_server_name": SERVER_NAME,
                        "imap_user": USER,
                        "imap_handled_folder": "Verwerkt",
                        "maildir": None,
                    }
                ),
                "tls": world.settings.tls.model_copy(update={"ca_file": server.ca.cert}),
                "imap_password": SecretStr(PASSWORD),
            }
        )
        with open_return_mailbox(settings) as reader:
            report = process_return_mailbox(settings, world.db, mailbox=reader, clock=world.clock)
        assert (report.permanent, report.not_understood) == (1, 1)
        assert states(world)["anouk"] == ("bounced", "bounced", ["bounced"])
        assert len(server.contents("Verwerkt")) == 1
        [(_, kept_flags)] = server.contents("INBOX")
        assert kept_flags == {"$NewsletterUnknown"}
