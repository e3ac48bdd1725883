"""Staff's side of the list: add, import, export, show, remove, erase and purge."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput, SubscriberError, UnknownSubscriber
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import ConfirmationToken, ConsentEvent, Subscriber, Suppression
from tests.support.clock import FixedClock
from tests.support.subscribers import (
    CONSENT,
    WEB,
    all_text,
    confirm_token,
    events_of,
    force_status,
    snapshot,
    status_of,
    subscribe,
    subscribe_and_confirm,
    suppression_of,
)

CLI = Requester(source="cli")
IMPORT = Requester(source="import")


@pytest.fixture
def flows(settings: Settings, db: Database, clock: FixedClock) -> SubscriberFlows:
    return SubscriberFlows(settings, db, clock=clock)


@pytest.fixture
def people(settings: Settings, db: Database, clock: FixedClock) -> ListManagement:
    return ListManagement(settings, db, clock=clock)


def csv_text(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


# -- add ---------------------------------------------------------------------------------


def test_add_makes_a_pending_subscriber_and_a_confirmation_mail(
    flows: SubscriberFlows, people: ListManagement, db: Database
) -> None:
    [mail] = people.add("ouder@example.org", name="Sanne", themes=["doe-je-mee"], requester=CLI)
    assert mail.kind == "confirmation" and "Sanne" not in mail.text
    assert status_of(db, "ouder@example.org") == "pending"
    done = flows.confirm(confirm_token(mail), WEB)
    assert done is not None
    assert (done.subscriber.name, done.subscriber.themes) == ("Sanne", ("doe-je-mee",))


def test_add_confirmed_needs_a_consent_note(people: ListManagement, db: Database) -> None:
    before = snapshot(db)
    for note in (None, "", "   "):
        with pytest.raises(InvalidInput) as caught:
            people.add(
                "ouder@example.org",
                name=None,
                themes=[],
                requester=CLI,
                confirmed=True,
                consent_note=note,
            )
        assert caught.value.problems == {"consent_note": "required"}
    assert snapshot(db) == before


def test_add_confirmed_logs_the_note_and_sends_nothing(
    people: ListManagement, db: Database
) -> None:
    mails = people.add(
        "ouder@example.org",
        name=None,
        themes=[],
        requester=CLI,
        confirmed=True,
        consent_note="Aangemeld op papier, actiedag Utrecht 12 juni",
    )
    assert mails == []
    assert status_of(db, "ouder@example.org") == "confirmed"
    person = people.show("ouder@example.org")
    [event] = person.consent_log
    assert event.event == "added_by_staff" and event.source == "cli"
    assert event.details["note"] == "Aangemeld op papier, actiedag Utrecht 12 juni"


def test_add_confirms_a_pending_subscriber_and_spends_its_links(
    flows: SubscriberFlows, people: ListManagement, db: Database
) -> None:
    [mail] = subscribe(flows, "ouder@example.org")
    people.add(
        "ouder@example.org",
        name="Sanne",
        themes=[],
        requester=CLI,
        confirmed=True,
        consent_note="Belde ons op",
    )
    assert status_of(db, "ouder@example.org") == "confirmed"
    assert flows.confirm(confirm_token(mail), WEB) is None


def test_add_leaves_a_confirmed_subscriber_alone(
    flows: SubscriberFlows, people: ListManagement, db: Database
) -> None:
    subscribe_and_confirm(flows, "ouder@example.org", name="Sanne")
    before = snapshot(db)
    assert people.add("ouder@example.org", name="Ander", themes=[], requester=CLI) == []
    assert (
        people.add(
            "ouder@example.org",
            name="Ander",
            themes=[],
            requester=CLI,
            confirmed=True,
            consent_note="x",
        )
        == []
    )
    assert snapshot(db) == before


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained", "erased"])
def test_staff_cannot_confirm_a_suppressed_address_but_can_ask_it_to_opt_in(
    flows: SubscriberFlows, people: ListManagement, db: Database, status: str
) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org")
    if status == "unsubscribed":
        flows.unsubscribe(view.unsubscribe_url.rsplit("/", 1)[1], WEB)
    elif status == "erased":
        people.erase("ouder@example.org", CLI)
    else:
        force_status(db, "ouder@example.org", status)
    before = snapshot(db)
    with pytest.raises(SubscriberError, match=rf"ouder@example\.org is suppressed \({status}\)"):
        people.add(
            "ouder@example.org",
            name=None,
            themes=[],
            requester=CLI,
            confirmed=True,
            consent_note="Stond op de oude lijst",
        )
    assert snapshot(db) == before
    [mail] = people.add("ouder@example.org", name=None, themes=[], requester=CLI)
    assert mail.kind == "confirmation"
    assert suppression_of(db, "ouder@example.org") == status
    assert flows.confirm(confirm_token(mail), WEB) is not None
    assert suppression_of(db, "ouder@example.org") is None


# -- import ------------------------------------------------------------------------------


def test_import_reports_bad_rows_by_line_number_and_imports_the_others(
    people: ListManagement, db: Database
) -> None:
    text = csv_text(
        "email,name,themes",
        "een@example.org,Een,doe-je-mee",
        "geen-adres,Twee,",
        "drie@example.org,Klik op https://spam.example,",
        "",
        "vier@example.org,,doe-je-mee;bestaat-niet",
        "vijf@example.org,Vijf,opstarten-beweging;kampvuurgesprekken",
        "EEN@example.org,Nog eens,",
        "zes@example.org,Zes,,te veel",
        '"zeven@example.org","Zeven ""7""",',
    )
    report = people.import_csv(text, requester=IMPORT)
    assert [(problem.line, problem.reason) for problem in report.problems] == [
        (3, "not a valid e-mail address"),
        (4, "the name holds a line break, link, address or markup"),
        (6, "unknown theme bestaat-niet"),
        (8, "the same address as line 2"),
        (9, "4 fields where the header has 3"),
    ]
    assert (report.pending, report.confirmed, report.unchanged) == (3, 0, 0)
    assert sorted(mail.to for mail in report.mails) == [
        "een@example.org",
        "vijf@example.org",
        "zeven@example.org",
    ]
    assert report.rows == 8
    with db.session() as session:
        names = dict(session.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names == {
        "een@example.org": "Een",
        "vijf@example.org": "Vijf",
        "zeven@example.org": 'Zeven "7"',
    }
    assert events_of(db, "een@example.org") == ["subscribe_requested"]


def test_import_confirmed_records_imported_with_the_note(
    people: ListManagement, db: Database
) -> None:
    report = people.import_csv(
        csv_text("themes,email", "doe-je-mee,een@example.org", ",twee@example.org"),
        requester=IMPORT,
        confirmed=True,
        consent_note="Ledenlijst van de cliëntenraad, toestemming per formulier",
    )
    assert (report.confirmed, report.problems, report.mails) == (2, [], [])
    assert events_of(db, "een@example.org") == ["imported"]
    assert status_of(db, "twee@example.org") == "confirmed"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the CSV file is empty"),
        ("name,themes\nx,y\n", "line 1: the header row must name the columns"),
        ("email,telefoon\nx@example.org,06\n", "line 1: the header row must name the columns"),
    ],
)
def test_import_refuses_a_file_without_a_usable_header(
    people: ListManagement, db: Database, text: str, message: str
) -> None:
    before = snapshot(db)
    with pytest.raises(SubscriberError, match=message):
        people.import_csv(io.StringIO(text), requester=IMPORT)
    assert snapshot(db) == before


def test_import_accepts_a_byte_order_mark_and_capitals_in_the_header(
    people: ListManagement,
) -> None:
    report = people.import_csv(io.StringIO("\ufeffEmail,Name\nx@example.org,X\n"), requester=IMPORT)
    assert report.pending == 1 and report.problems == []


def test_erase_then_reimport_needs_a_new_opt_in(
    flows: SubscriberFlows, people: ListManagement, db: Database
) -> None:
    subscribe_and_confirm(flows, "ouder@example.org")
    people.erase("ouder@example.org", CLI)
    lines = ("email,name,themes", "ouder@example.org,Sanne,")
    report = people.import_csv(
        csv_text(*lines), requester=IMPORT, confirmed=True, consent_note="Oude ledenlijst"
    )
    [problem] = report.problems
    assert problem.line == 2 and "suppressed (erased)" in problem.reason
    assert status_of(db, "ouder@example.org") is None
    # Without --confirmed the row asks the address itself.
    report = people.import_csv(csv_text(*lines), requester=IMPORT)
    [mail] = report.mails
    assert status_of(db, "ouder@example.org") == "pending"
    assert suppression_of(db, "ouder@example.org") == "erased"
    assert flows.confirm(confirm_token(mail), WEB) is not None
    assert status_of(db, "ouder@example.org") == "confirmed"
    assert suppression_of(db, "ouder@example.org") is None


def test_import_reports_an_address_past_its_mail_limit(
    flows: SubscriberFlows, people: ListManagement
) -> None:
    for _ in range(3):
        subscribe(flows, "ouder@example.org")
    report = people.import_csv(csv_text("email", "ouder@example.org"), requester=IMPORT)
    [problem] = report.problems
    assert problem.line == 2 and "confirmation mails for today" in problem.reason


# -- list, export, show -----------------------------------------------------------------


def test_list_and_export_filter_by_status(
    flows: SubscriberFlows, people: ListManagement, clock: FixedClock
) -> None:
    subscribe_and_confirm(
        flows, "een@example.org", name="Een", themes=["doe-je-mee", "kampvuurgesprekken"]
    )
    clock.advance(minutes=1)
    subscribe(flows, "twee@example.org")
    assert [row.email for row in people.subscribers()] == ["een@example.org", "twee@example.org"]
    assert [row.email for row in people.subscribers(status="pending")] == ["twee@example.org"]
    [exported] = list(people.export(status="confirmed"))
    assert exported == {
        "email": "een@example.org",
        "name": "Een",
        "status": "confirmed",
        "themes": "kampvuurgesprekken;doe-je-mee",
        "created_at": "2026-11-17T08:00:00+00:00",
        "confirmed_at": "2026-11-17T08:00:00+00:00",
    }
    with pytest.raises(InvalidInput):
        people.subscribers(status="weg")
    with pytest.raises(InvalidInput):
        people.export(status="weg")


def test_export_keeps_names_from_becoming_spreadsheet_formulas(
    flows: SubscriberFlows, people: ListManagement
) -> None:
    subscribe_and_confirm(flows, "formule@example.org", name="=1+2")
    [exported] = list(people.export())
    assert exported["name"] == "'=1+2"


def test_show_returns_everything_held_including_the_consent_texts(
    flows: SubscriberFlows,
    people: ListManagement,
) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org", name="Sanne")
    person = people.show("OUDER@example.org")
    assert person.subscriber.public_id == view.public_id
    assert person.subscriber.name == "Sanne"
    assert person.subscriber.unsubscribe_url == view.unsubscribe_url
    assert person.suppression is None
    log = person.consent_log
    assert [event.event for event in log] == ["subscribe_requested", "confirmed"]
    assert all(event.consent_text == CONSENT for event in log)
    assert log[0].source == "form" and log[0].user_agent == "Mozilla/5.0 (test)"
    assert re.fullmatch(r"[0-9a-f]{64}", log[0].ip)  # the default policy: hashed


def test_show_lists_open_confirmations(flows: SubscriberFlows, people: ListManagement) -> None:
    subscribe(flows, "ouder@example.org", name="Sanne")
    [token] = people.show("ouder@example.org").pending_confirmations
    assert token.purpose == "subscribe" and token.requested["name"] == "Sanne"


def test_show_an_unknown_address(people: ListManagement) -> None:
    with pytest.raises(UnknownSubscriber, match=r"niemand@example\.org is not on the list"):
        people.show("niemand@example.org")


# -- remove and erase ----------------------------------------------------------------------


def test_remove_unsubscribes_and_suppresses_but_keeps_the_data(
    flows: SubscriberFlows, people: ListManagement, db: Database
) -> None:
    subscribe_and_confirm(flows, "ouder@example.org", name="Sanne")
    people.remove("ouder@example.org", CLI)
    assert status_of(db, "ouder@example.org") == "unsubscribed"
    assert suppression_of(db, "ouder@example.org") == "unsubscribed"
    assert people.show("ouder@example.org").subscriber.name == "Sanne"
    assert events_of(db, "ouder@example.org")[-1] == "removed"
    with pytest.raises(UnknownSubscriber):
        people.remove("niemand@example.org", CLI)


def test_erase_leaves_no_address_name_or_ip_anywhere(
    make_settings: Callable[..., Settings], db: Database, clock: FixedClock
) -> None:
    flows = SubscriberFlows(make_settings(subscribers={"ip_policy": "store"}), db, clock=clock)
    people = ListManagement(make_settings(subscribers={"ip_policy": "store"}), db, clock=clock)
    requester = Requester("form", ip="198.51.100.77", user_agent="Firefox/Sanne-PC")
    view = subscribe_and_confirm(
        flows, "Sanne.Jansen@Example.org", name="Sanne Jansen", requester=requester
    )
    token = view.preferences_url.rsplit("/", 1)[1]
    flows.update_preferences(token, name="Sanne J.", themes=["doe-je-mee"], requester=requester)
    flows.request_address_change(token, new_email="sanne.nieuw@example.org", requester=requester)
    subscribe_and_confirm(
        flows,
        "buurman@example.org",
        name="Buurman",
        requester=Requester("form", ip="203.0.113.5"),
    )
    people.erase("sanne.jansen@example.org", CLI)

    text = all_text(db).casefold()
    for secret in ("sanne", "jansen", "198.51.100.77", "firefox", "sanne.nieuw"):
        assert secret not in text, secret
    assert "buurman@example.org" in text  # other people are untouched
    assert suppression_of(db, "sanne.jansen@example.org") == "erased"
    with db.session() as session:
        assert session.scalars(select(ConfirmationToken)).all() == []
        erased = session.scalars(select(ConsentEvent).where(ConsentEvent.event == "erased")).one()
        assert erased.source == "cli" and erased.ip is None
        anonymous = session.scalars(
            select(ConsentEvent).where(ConsentEvent.subject_hash == erased.subject_hash)
        ).all()
        moved = session.scalars(
            select(ConsentEvent).where(ConsentEvent.event == "address_change_requested")
        ).all()
    assert [event.event for event in anonymous] == [
        "subscribe_requested",
        "confirmed",
        "preferences_changed",
        "erased",
    ]
    anonymous += moved  # about the new address, but the subscriber's own doing
    for event in anonymous:
        assert (event.subscriber_id, event.ip, event.user_agent, event.details) == (
            None,
            None,
            None,
            None,
        )
    assert anonymous[0].consent_text_hash is not None  # what was consented to stays provable


def test_show_after_erase_returns_only_the_hashed_remains(
    flows: SubscriberFlows, people: ListManagement
) -> None:
    subscribe_and_confirm(flows, "ouder@example.org", name="Sanne")
    people.erase("ouder@example.org", CLI)
    person = people.show("ouder@example.org")
    assert person.subscriber is None
    assert person.suppression.reason == "erased"
    assert [event.event for event in person.consent_log] == [
        "subscribe_requested",
        "confirmed",
        "erased",
    ]
    assert all(event.ip is None for event in person.consent_log)


def test_erase_an_unknown_address(people: ListManagement, db: Database) -> None:
    with pytest.raises(UnknownSubscriber):
        people.erase("niemand@example.org", CLI)
    assert snapshot(db)["suppressions"] == []


def test_an_erased_subscribers_links_die(flows: SubscriberFlows, people: ListManagement) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org")
    people.erase("ouder@example.org", CLI)
    token = view.unsubscribe_url.rsplit("/", 1)[1]
    assert flows.subscriber_for(token, "unsubscribe") is None
    assert not flows.unsubscribe(token, WEB)


# -- purge -------------------------------------------------------------------------------


def test_purge_deletes_sign_ups_never_confirmed_in_time(
    flows: SubscriberFlows, people: ListManagement, db: Database, clock: FixedClock
) -> None:
    subscribe(flows, "oud@example.org", name="Oud")
    subscribe_and_confirm(flows, "bevestigd@example.org")
    clock.advance(days=6)
    subscribe(flows, "recent@example.org")
    clock.advance(days=1, seconds=1)
    assert people.purge_unconfirmed() == 1
    assert status_of(db, "oud@example.org") is None
    assert status_of(db, "recent@example.org") == "pending"
    assert status_of(db, "bevestigd@example.org") == "confirmed"
    assert events_of(db, "oud@example.org") == ["subscribe_requested", "purged"]
    with db.session() as session:
        purged = session.scalars(select(ConsentEvent).where(ConsentEvent.event == "purged")).one()
        assert (purged.subscriber_id, purged.ip, purged.source) == (None, None, "system")
        owners = session.scalars(select(ConfirmationToken.subscriber_id)).all()
        assert len(owners) == 1  # only recent@'s token is left
    assert "Oud" not in all_text(db)
    assert people.purge_unconfirmed() == 0


def test_a_new_request_keeps_a_pending_row_from_the_purge(
    flows: SubscriberFlows, people: ListManagement, db: Database, clock: FixedClock
) -> None:
    subscribe(flows, "ouder@example.org")
    clock.advance(days=6)
    [mail] = subscribe(flows, "ouder@example.org")
    clock.advance(days=1, hours=1)
    assert people.purge_unconfirmed() == 0
    assert flows.confirm(confirm_token(mail), WEB) is not None


def test_purge_expired_tokens(
    flows: SubscriberFlows, people: ListManagement, db: Database, clock: FixedClock
) -> None:
    subscribe(flows, "een@example.org")
    clock.advance(hours=47)
    subscribe(flows, "twee@example.org")
    clock.advance(hours=1)
    assert people.purge_expired_tokens() == 1
    assert people.purge_expired_tokens() == 0
    with db.session() as session:
        assert len(session.scalars(select(ConfirmationToken)).all()) == 1
        assert len(session.scalars(select(Suppression)).all()) == 0
