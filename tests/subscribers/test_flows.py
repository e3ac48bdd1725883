"""The sign-up rules of docs/subscribers.md, on SQLite and PostgreSQL, with a fixed clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput
from newsletter.mail.queue import queued_rows
from subscribers.addresses import keyed_hash
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import ConfirmationToken, ConsentEvent, ConsentText, Subscriber
from subscribers.tokens import link_token
from tests.support.clock import FixedClock
from tests.support.databases import statement_sent
from tests.support.subscribers import (
    CONSENT,
    FORM,
    SECRET,
    WEB,
    confirm_token,
    events_of,
    force_status,
    snapshot,
    status_of,
    subscribe,
    subscribe_and_confirm,
    suppression_of,
)
from tests.support.waiting import PATIENCE_SECONDS, joined, wait_until


@pytest.fixture
def flows(settings: Settings, db: Database, clock: FixedClock) -> SubscriberFlows:
    return SubscriberFlows(settings, db, clock=clock)


@pytest.fixture
def people(settings: Settings, db: Database, clock: FixedClock) -> ListManagement:
    return ListManagement(settings, db, clock=clock)


def subscriber_row(db: Database, email: str) -> Subscriber:
    with db.session() as session:
        return session.scalars(
            select(Subscriber).where(Subscriber.email_key == email.casefold())
        ).one()


def count(db: Database, model: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# -- a new address ----------------------------------------------------------------------


def test_a_new_address_becomes_pending_and_gets_one_confirmation_mail(
    flows: SubscriberFlows, db: Database
) -> None:
    [mail] = subscribe(flows, "Ouder@Example.ORG", name="Sanne", themes=["doe-je-mee"])
    assert mail.kind == "confirmation"
    assert mail.to == "Ouder@example.org"  # domain lower-cased, local part kept
    assert (
        mail.subject
        == "Bevestig je aanmelding voor de nieuwsbrief van Radicale vernieuwing jeugdzorg"
    )
    assert "Sanne" not in mail.text and mail.html is not None and "Sanne" not in mail.html
    assert "Doe je mee?" in mail.text and "48 uur" in mail.text
    assert mail.extra_headers == {}
    row = subscriber_row(db, "ouder@example.org")
    assert (row.status, row.name, row.themes, row.confirmed_at) == (
        "pending",
        "Sanne",
        ["doe-je-mee"],
        None,
    )
    assert events_of(db, "ouder@example.org") == ["subscribe_requested"]
    assert suppression_of(db, "ouder@example.org") is None


def test_confirming_makes_the_subscriber_confirmed_with_what_was_asked(
    flows: SubscriberFlows, db: Database, clock: FixedClock
) -> None:
    [mail] = subscribe(flows, "ouder@example.org", name="Sanne", themes=["doe-je-mee"])
    token = confirm_token(mail)
    clock.advance(hours=3)
    assert flows.pending_confirmation(token) is not None
    done = flows.confirm(token, WEB)
    assert done is not None and done.outcome == "subscribed"
    view = done.subscriber
    assert (view.email, view.name, view.status, view.themes) == (
        "ouder@example.org",
        "Sanne",
        "confirmed",
        ("doe-je-mee",),
    )
    assert view.unsubscribe_url.startswith("http://127.0.0.1:8000/unsubscribe/")
    assert view.preferences_url.startswith("http://127.0.0.1:8000/preferences/")
    row = subscriber_row(db, "ouder@example.org")
    assert row.confirmed_at == clock()
    assert events_of(db, "ouder@example.org") == ["subscribe_requested", "confirmed"]
    assert count(db, ConfirmationToken) == 0  # single use: the row is gone


def test_the_token_is_stored_only_as_its_hash(flows: SubscriberFlows, db: Database) -> None:
    [mail] = subscribe(flows, "ouder@example.org")
    token = confirm_token(mail)
    with db.session() as session:
        [stored] = session.scalars(select(ConfirmationToken)).all()
    assert stored.token_hash != token and token not in repr(snapshot(db))
    assert len(stored.token_hash) == 64


# -- requests for an address in each state ------------------------------------------------


def test_a_pending_address_gets_a_new_mail_and_the_clicked_link_s_request_wins(
    flows: SubscriberFlows, db: Database
) -> None:
    [first] = subscribe(flows, "ouder@example.org", name="Eerste", themes=["doe-je-mee"])
    [second] = subscribe(flows, "OUDER@example.org", name="Tweede", themes=["kampvuurgesprekken"])
    assert second.kind == "confirmation" and confirm_token(first) != confirm_token(second)
    assert status_of(db, "ouder@example.org") == "pending"
    # The older link confirms what its own request asked for, not the newer one's.
    done = flows.confirm(confirm_token(first), WEB)
    assert done is not None
    assert (done.subscriber.name, done.subscriber.themes) == ("Eerste", ("doe-je-mee",))
    # And every outstanding sign-up link is spent now.
    assert flows.confirm(confirm_token(second), WEB) is None
    assert count(db, Subscriber) == 1


def test_a_confirmed_address_gets_a_notice_with_its_preferences_link(
    flows: SubscriberFlows, db: Database
) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org", name="Sanne", themes=["doe-je-mee"])
    [notice] = subscribe(flows, "ouder@example.org", name="Iemand anders", themes=[])
    assert notice.kind == "notice"
    assert view.preferences_url in notice.text
    assert notice.html is not None and view.preferences_url in notice.html
    assert "/confirm/" not in notice.text
    row = subscriber_row(db, "ouder@example.org")
    assert (row.name, row.themes, row.status) == ("Sanne", ["doe-je-mee"], "confirmed")


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
def test_a_suppressed_subscriber_keeps_its_status_until_it_confirms_again(
    flows: SubscriberFlows, db: Database, status: str
) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org")
    if status == "unsubscribed":
        assert flows.unsubscribe(view.unsubscribe_url.rsplit("/", 1)[1], WEB)
    else:
        force_status(db, "ouder@example.org", status)
    [mail] = subscribe(flows, "ouder@example.org", themes=["doe-je-mee"])
    assert mail.kind == "confirmation"
    assert status_of(db, "ouder@example.org") == status
    assert suppression_of(db, "ouder@example.org") == status
    confirmed = flows.confirm(confirm_token(mail), WEB)
    assert confirmed is not None and confirmed.subscriber.public_id == view.public_id
    assert status_of(db, "ouder@example.org") == "confirmed"
    assert suppression_of(db, "ouder@example.org") is None
    assert subscriber_row(db, "ouder@example.org").unsubscribed_at is None


def test_an_erased_address_gets_a_new_pending_row_and_stays_suppressed_until_it_confirms(
    flows: SubscriberFlows, people: ListManagement, db: Database
) -> None:
    old = subscribe_and_confirm(flows, "ouder@example.org")
    people.erase("ouder@example.org", Requester("cli"))
    [mail] = subscribe(flows, "ouder@example.org")
    assert mail.kind == "confirmation"
    row = subscriber_row(db, "ouder@example.org")
    assert row.status == "pending" and row.public_id != old.public_id
    assert suppression_of(db, "ouder@example.org") == "erased"
    assert flows.confirm(confirm_token(mail), WEB) is not None
    assert suppression_of(db, "ouder@example.org") is None


# -- enumeration -------------------------------------------------------------------------


def _put_in_state(
    flows: SubscriberFlows, people: ListManagement, db: Database, email: str, state: str
) -> None:
    if state == "new":
        return
    if state == "pending":
        subscribe(flows, email)
        return
    view = subscribe_and_confirm(flows, email)
    if state == "unsubscribed":
        flows.unsubscribe(view.unsubscribe_url.rsplit("/", 1)[1], WEB)
    elif state in ("bounced", "complained"):
        force_status(db, email, state)
    elif state == "erased":
        people.erase(email, Requester("cli"))


STATES = ["new", "pending", "confirmed", "unsubscribed", "bounced", "complained", "erased"]


def test_every_state_gets_the_same_answer_shape(
    flows: SubscriberFlows, people: ListManagement, db: Database, clock: FixedClock
) -> None:
    answers: dict[str, Any] = {}
    for state in STATES:
        email = f"{state}@example.org"
        _put_in_state(flows, people, db, email, state)
        clock.advance(hours=25)  # a fresh day: the setup's mails do not count
        answer = subscribe(flows, email, name="Sanne", themes=["doe-je-mee"])
        assert isinstance(answer, list) and len(answer) == 1
        answers[state] = answer[0]
    confirmation = {state: mail for state, mail in answers.items() if state != "confirmed"}
    assert {mail.kind for mail in confirmation.values()} == {"confirmation"}
    assert len({mail.subject for mail in confirmation.values()}) == 1
    # The confirmation mails are the same text apart from the token and the address.
    texts = {mail.text.replace(confirm_token(mail), "TOKEN") for mail in confirmation.values()}
    assert len(texts) == 1
    assert answers["confirmed"].kind == "notice"


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("", "required"),
        ("   ", "required"),
        ("geen-adres", "invalid"),
        ("a@b", "invalid"),
        ("a@@example.org", "invalid"),
        ("ouder@example.org\r\nBcc: x@example.org", "invalid"),
        ("x" * 250 + "@example.org", "too_long"),
    ],
)
def test_a_malformed_address_is_the_only_reason_for_an_exception(
    flows: SubscriberFlows, db: Database, email: str, code: str
) -> None:
    before = snapshot(db)
    with pytest.raises(InvalidInput) as caught:
        subscribe(flows, email)
    assert caught.value.problems == {"email": code}
    assert snapshot(db) == before


# -- the per-address limit ---------------------------------------------------------------


def test_the_fourth_mail_in_a_day_is_not_sent_and_is_logged(
    flows: SubscriberFlows, db: Database, clock: FixedClock
) -> None:
    for _ in range(3):
        assert len(subscribe(flows, "ouder@example.org")) == 1
        clock.advance(hours=1)
    tokens_before = count(db, ConfirmationToken)
    assert subscribe(flows, "ouder@example.org") == []
    assert count(db, ConfirmationToken) == tokens_before
    assert events_of(db, "ouder@example.org")[-1] == "mail_limit_reached"
    clock.advance(hours=21, minutes=1)  # 24 h after the first mail
    assert len(subscribe(flows, "ouder@example.org")) == 1


def test_notices_count_towards_the_limit_too(
    flows: SubscriberFlows, db: Database, clock: FixedClock
) -> None:
    subscribe_and_confirm(flows, "ouder@example.org")
    assert len(subscribe(flows, "ouder@example.org")) == 1
    assert len(subscribe(flows, "ouder@example.org")) == 1
    assert subscribe(flows, "ouder@example.org") == []


def test_the_limit_is_per_address_and_follows_the_settings(
    make_settings: Callable[..., Settings], db: Database, clock: FixedClock
) -> None:
    flows = SubscriberFlows(
        make_settings(subscribers={"max_confirmation_mails_per_day": 1}), db, clock=clock
    )
    assert len(subscribe(flows, "een@example.org")) == 1
    assert subscribe(flows, "een@example.org") == []
    assert len(subscribe(flows, "twee@example.org")) == 1


def test_a_new_address_past_its_limit_gets_no_row(
    make_settings: Callable[..., Settings], db: Database, clock: FixedClock
) -> None:
    flows = SubscriberFlows(
        make_settings(subscribers={"max_confirmation_mails_per_day": 1}), db, clock=clock
    )
    people = ListManagement(
        make_settings(subscribers={"max_confirmation_mails_per_day": 1}), db, clock=clock
    )
    subscribe_and_confirm(flows, "ouder@example.org")
    people.erase("ouder@example.org", Requester("cli"))
    assert subscribe(flows, "ouder@example.org") == []
    assert status_of(db, "ouder@example.org") is None


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Sanne\r\nBcc: slachtoffer@example.com", "not_a_name"),
        ("Sanne\nKlik hier", "not_a_name"),
        ("Win geld: https://spam.example", "not_a_name"),
        ("Ga naar www.spam.example", "not_a_name"),
        ("<b>Sanne</b>", "not_a_name"),
        ('Sanne <img src="x">', "not_a_name"),
        ("mail me: x@spam.example", "not_a_name"),
        ("S" * 101, "too_long"),
    ],
)
def test_names_that_carry_links_markup_or_headers_are_refused_and_nothing_is_stored(
    flows: SubscriberFlows, db: Database, name: str, code: str
) -> None:
    before = snapshot(db)
    with pytest.raises(InvalidInput) as caught:
        subscribe(flows, "ouder@example.org", name=name)
    assert caught.value.problems == {"name": code}
    assert snapshot(db) == before


def test_unknown_themes_are_refused(flows: SubscriberFlows, db: Database) -> None:
    before = snapshot(db)
    with pytest.raises(InvalidInput) as caught:
        subscribe(flows, "ouder@example.org", themes=["doe-je-mee", "bestaat-niet"])
    assert caught.value.problems == {"themes": "unknown"}
    assert snapshot(db) == before


def test_themes_are_deduplicated_in_the_order_of_the_settings(
    flows: SubscriberFlows, db: Database
) -> None:
    subscribe_and_confirm(
        flows, "ouder@example.org", themes=["doe-je-mee", "opstarten-beweging", "doe-je-mee"]
    )
    assert subscriber_row(db, "ouder@example.org").themes == ["opstarten-beweging", "doe-je-mee"]


# -- confirmation tokens -------------------------------------------------------------------


def test_an_expired_token_changes_nothing(
    flows: SubscriberFlows, db: Database, clock: FixedClock
) -> None:
    [mail] = subscribe(flows, "ouder@example.org")
    token = confirm_token(mail)
    clock.advance(hours=48)
    before = snapshot(db)
    assert flows.pending_confirmation(token) is None
    assert flows.confirm(token, WEB) is None
    assert snapshot(db) == before
    assert status_of(db, "ouder@example.org") == "pending"


def test_a_token_works_once(flows: SubscriberFlows, db: Database) -> None:
    [mail] = subscribe(flows, "ouder@example.org")
    token = confirm_token(mail)
    assert flows.confirm(token, WEB) is not None
    before = snapshot(db)
    assert flows.pending_confirmation(token) is None
    assert flows.confirm(token, WEB) is None
    assert snapshot(db) == before


def _tampered(token: str) -> str:
    flipped = "A" if token[5] != "A" else "B"
    return token[:5] + flipped + token[6:]


def test_tampered_truncated_and_junk_confirmation_tokens_change_nothing(
    flows: SubscriberFlows, db: Database
) -> None:
    [mail] = subscribe(flows, "ouder@example.org")
    token = confirm_token(mail)
    before = snapshot(db)
    for bad in (
        _tampered(token),
        token[:-1],
        token + "A",
        "",
        "../../etc/passwd",
        "x" * 10_000,
        token.upper() if token.upper() != token else token.lower(),
        "\x00" * 43,
    ):
        assert flows.pending_confirmation(bad) is None
        assert flows.confirm(bad, WEB) is None
    assert snapshot(db) == before


def test_checking_a_token_reads_only(flows: SubscriberFlows, db: Database) -> None:
    [mail] = subscribe(flows, "ouder@example.org")
    before = snapshot(db)
    for _ in range(3):
        assert flows.pending_confirmation(confirm_token(mail)) is not None
    assert snapshot(db) == before


# -- link tokens: unsubscribe and preferences ---------------------------------------------


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_unsubscribing_suppresses_and_is_idempotent(flows: SubscriberFlows, db: Database) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org")
    token = _token(view.unsubscribe_url)
    assert flows.subscriber_for(token, "unsubscribe") == view
    assert flows.unsubscribe(token, WEB)
    assert status_of(db, "ouder@example.org") == "unsubscribed"
    assert suppression_of(db, "ouder@example.org") == "unsubscribed"
    assert flows.unsubscribe(token, WEB)
    assert events_of(db, "ouder@example.org").count("unsubscribed") == 1
    still = flows.subscriber_for(token, "unsubscribe")
    assert still is not None and still.status == "unsubscribed"


def test_unsubscribing_spends_an_outstanding_sign_up_mail(
    flows: SubscriberFlows, db: Database, clock: FixedClock
) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org")
    flows.unsubscribe(_token(view.unsubscribe_url), WEB)
    [mail] = subscribe(flows, "ouder@example.org")
    flows.unsubscribe(_token(view.unsubscribe_url), WEB)
    assert flows.confirm(confirm_token(mail), WEB) is None
    assert status_of(db, "ouder@example.org") == "unsubscribed"


def test_link_tokens_only_work_for_their_purpose_and_subscriber(
    flows: SubscriberFlows, db: Database
) -> None:
    mine = subscribe_and_confirm(flows, "ouder@example.org")
    other = subscribe_and_confirm(flows, "ander@example.org")
    unsubscribe = _token(mine.unsubscribe_url)
    preferences = _token(mine.preferences_url)
    foreign = link_token("een-heel-andere-sleutel", "unsubscribe", mine.public_id)
    moved = other.public_id + unsubscribe[len(mine.public_id) :]
    bad_tokens = [
        _tampered(unsubscribe),
        unsubscribe[:-1],
        unsubscribe[:22],
        unsubscribe + "x",
        preferences,  # the other purpose
        foreign,  # signed with another secret
        moved,  # another subscriber's id with this one's MAC
        "",
        ".",
        "x" * 5000,
        unsubscribe.replace(".", ".."),
    ]
    before = snapshot(db)
    for bad in bad_tokens:
        assert flows.subscriber_for(bad, "unsubscribe") is None, bad
        assert not flows.unsubscribe(bad, WEB), bad
    for bad in [_tampered(preferences), preferences[:-2], unsubscribe, moved]:
        assert flows.subscriber_for(bad, "preferences") is None, bad
        assert flows.update_preferences(bad, name="X", themes=[], requester=WEB) is None
        assert flows.request_address_change(bad, new_email="nieuw@example.org", requester=WEB) == []
    assert snapshot(db) == before


def test_preferences_change_name_and_themes(flows: SubscriberFlows, db: Database) -> None:
    view = subscribe_and_confirm(flows, "ouder@example.org", name="Sanne")
    token = _token(view.preferences_url)
    changed = flows.update_preferences(
        token, name="  Sanne   de Vries ", themes=["kampvuurgesprekken"], requester=WEB
    )
    assert changed is not None
    assert (changed.name, changed.themes) == ("Sanne de Vries", ("kampvuurgesprekken",))
    assert events_of(db, "ouder@example.org")[-1] == "preferences_changed"
    with pytest.raises(InvalidInput):
        flows.update_preferences(token, name="zie www.spam.example", themes=[], requester=WEB)
    assert subscriber_row(db, "ouder@example.org").name == "Sanne de Vries"


# -- address change ----------------------------------------------------------------------


def test_an_address_change_is_confirmed_by_the_new_address(
    flows: SubscriberFlows, db: Database
) -> None:
    view = subscribe_and_confirm(flows, "oud@example.org")
    [mail] = flows.request_address_change(
        _token(view.preferences_url), new_email="Nieuw@Example.org", requester=WEB
    )
    assert mail.kind == "address_change" and mail.to == "Nieuw@example.org"
    assert status_of(db, "oud@example.org") == "confirmed"  # nothing moves before confirming
    done = flows.confirm(confirm_token(mail), WEB)
    assert done is not None and done.outcome == "changed"
    moved = done.subscriber
    assert moved.email == "Nieuw@example.org" and moved.public_id == view.public_id
    assert moved.unsubscribe_url == view.unsubscribe_url  # the links stay with the row
    assert status_of(db, "oud@example.org") is None
    assert status_of(db, "nieuw@example.org") == "confirmed"
    assert events_of(db, "nieuw@example.org") == ["address_change_requested", "address_changed"]


def test_address_changes_share_the_new_address_limit(flows: SubscriberFlows, db: Database) -> None:
    view = subscribe_and_confirm(flows, "oud@example.org")
    token = _token(view.preferences_url)
    for _ in range(3):
        assert (
            len(flows.request_address_change(token, new_email="nieuw@example.org", requester=WEB))
            == 1
        )
    assert flows.request_address_change(token, new_email="nieuw@example.org", requester=WEB) == []
    assert subscribe(flows, "nieuw@example.org") == []
    assert events_of(db, "nieuw@example.org")[-1] == "mail_limit_reached"


def test_an_address_change_needs_a_valid_address(flows: SubscriberFlows) -> None:
    view = subscribe_and_confirm(flows, "oud@example.org")
    with pytest.raises(InvalidInput):
        flows.request_address_change(
            _token(view.preferences_url), new_email="geen adres", requester=WEB
        )


# -- the consent log ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["store", "hash", "none"])
def test_events_carry_source_ip_per_policy_user_agent_and_consent_text(
    make_settings: Callable[..., Settings], db: Database, clock: FixedClock, policy: str
) -> None:
    flows = SubscriberFlows(make_settings(subscribers={"ip_policy": policy}), db, clock=clock)
    requester = Requester("api", ip="2001:DB8::1", user_agent="Agent/1.0 " + "x" * 400)
    flows.request_subscription(
        email="ouder@example.org", name=None, themes=[], requester=requester, consent_text=CONSENT
    )
    with db.session() as session:
        [event] = session.scalars(select(ConsentEvent)).all()
        text = session.get(ConsentText, event.consent_text_hash)
    assert event.source == "api" and event.event == "subscribe_requested"
    assert event.created_at == clock()
    assert event.user_agent is not None and len(event.user_agent) == 300
    assert event.user_agent.startswith("Agent/1.0 x")
    assert text is not None and text.text == CONSENT
    expected = {
        "store": "2001:db8::1",
        "hash": keyed_hash("ip:2001:db8::1", SECRET),
        "none": None,
    }[policy]
    assert event.ip == expected


def test_a_consent_text_is_stored_once(flows: SubscriberFlows, db: Database) -> None:
    subscribe(flows, "een@example.org")
    subscribe(flows, "twee@example.org")
    subscribe(flows, "drie@example.org", consent_text="Een andere tekst.")
    assert count(db, ConsentText) == 2


def test_the_confirmation_refers_to_the_consent_text_of_the_request(
    flows: SubscriberFlows, db: Database
) -> None:
    subscribe_and_confirm(flows, "ouder@example.org")
    with db.session() as session:
        hashes = session.execute(
            select(ConsentEvent.event, ConsentEvent.consent_text_hash).order_by(ConsentEvent.id)
        ).all()
    [(_, requested), (_, confirmed)] = hashes
    assert requested is not None and requested == confirmed


def test_the_consent_text_is_required(flows: SubscriberFlows) -> None:
    with pytest.raises(InvalidInput):
        subscribe(flows, "ouder@example.org", consent_text="  ")


def test_request_and_confirmation_are_attributed_to_their_requesters(
    flows: SubscriberFlows, db: Database
) -> None:
    subscribe_and_confirm(flows, "ouder@example.org")
    with db.session() as session:
        sources = session.execute(
            select(ConsentEvent.event, ConsentEvent.source).order_by(ConsentEvent.id)
        ).all()
    assert [tuple(row) for row in sources] == [
        ("subscribe_requested", "form"),
        ("confirmed", "web"),
    ]
    assert FORM.source == "form"


# -- concurrency -------------------------------------------------------------------------


def test_two_sign_ups_of_one_new_address_at_once_make_one_row(
    flows: SubscriberFlows, db: Database, clock: FixedClock
) -> None:
    """The second insert collides on the unique key; the request is retried, not lost."""
    inserted, release = threading.Event(), threading.Event()

    def first_request() -> None:
        with db.session() as session:
            session.add(
                Subscriber(
                    public_id="x" * 22,
                    email="ouder@example.org",
                    email_key="ouder@example.org",
                    status="pending",
                    themes=[],
                    created_at=clock(),
                    updated_at=clock(),
                )
            )
            session.flush()
            inserted.set()
            release.wait(PATIENCE_SECONDS)

    answers: list[Any] = []
    first = threading.Thread(target=first_request)
    first.start()
    wait_until(inserted.is_set, what="the first sign-up to insert its row")
    second = threading.Thread(target=lambda: answers.append(subscribe(flows, "ouder@example.org")))
    # By its first insert the second has looked for the address and not found it (the
    # first's row is not committed), so it must collide; on SQLite it also waits there
    # for the first one's write lock.
    with statement_sent(db, by=second, starting="INSERT") as inserting:
        second.start()
        wait_until(inserting.is_set, what="the second sign-up to reach its first insert")
    release.set()
    joined(first, what="the first sign-up")
    joined(second, what="the second sign-up")
    [mails] = answers
    assert [mail.kind for mail in mails] == ["confirmation"]
    assert count(db, Subscriber) == 1


def test_the_mail_limit_counts_per_mailbox_whatever_the_tag(
    flows: SubscriberFlows, db: Database
) -> None:
    # victim+1@, victim+2@ ... all land in one mailbox: together they get the day's 3 mails.
    mails = [mail for n in range(10) for mail in subscribe(flows, f"Victim+{n}@example.org")]
    assert len(mails) == 3
    assert subscribe(flows, "victim@example.org") == []
    assert [mail.kind for mail in subscribe(flows, "other@example.org")] == ["confirmation"]
    # Each tagged address is still an address of its own on the list.
    assert status_of(db, "victim+0@example.org") == "pending"
    assert status_of(db, "victim+1@example.org") == "pending"


def test_with_a_mail_queue_the_sign_up_queues_its_mail_in_its_own_transaction(
    settings: Settings, db: Database, clock: FixedClock
) -> None:
    woken: list[int] = []
    queueing = SubscriberFlows(settings, db, clock=clock, mail_queued=lambda: woken.append(1))

    mails = queueing.request_subscription(
        email="ouder@example.org", name=None, themes=[], requester=FORM, consent_text=CONSENT
    )

    assert mails == [] and woken == [1]
    with db.session() as session:
        [queued] = queued_rows(session)
    assert queued["recipient"] == "ouder@example.org"
    assert events_of(db, "ouder@example.org") == ["subscribe_requested"]
    with pytest.raises(InvalidInput):
        queueing.request_subscription(
            email="geen adres", name=None, themes=[], requester=FORM, consent_text=CONSENT
        )
    with db.session() as session:
        assert len(queued_rows(session)) == 1
    assert woken == [1]
