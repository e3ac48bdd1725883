"""Confirming an address change, for each status the subscriber can be in by then: the
table in docs/subscribers.md, row by row."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import update

from newsletter.core.config import Settings
from newsletter.core.db import Database
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import Subscriber
from subscribers.records import SubscriberView
from tests.support.clock import FixedClock
from tests.support.subscribers import (
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
from tests.support.webharness import token_in

OLD = "oud@example.org"
NEW = "nieuw@example.org"


@pytest.fixture
def flows(settings: Settings, db: Database, clock: FixedClock) -> SubscriberFlows:
    return SubscriberFlows(settings, db, clock=clock)


def request_change(flows: SubscriberFlows) -> tuple[SubscriberView, str]:
    """A confirmed subscriber at OLD asks to move to NEW: them, and the token mailed to NEW."""
    view = subscribe_and_confirm(flows, OLD, name="Anouk", themes=["doe-je-mee"])
    [mail] = flows.request_address_change(
        token_in(view.preferences_url), new_email=NEW, requester=WEB
    )
    assert mail.kind == "address_change" and mail.to == NEW
    return view, confirm_token(mail)


def set_pending(db: Database) -> None:
    with db.session() as session:
        session.execute(update(Subscriber).values(status="pending"))


def test_confirmed_moves_to_the_new_address(flows: SubscriberFlows, db: Database) -> None:
    _, token = request_change(flows)
    done = flows.confirm(token, WEB)
    assert done is not None and done.outcome == "changed"
    assert (done.subscriber.email, done.subscriber.status) == (NEW, "confirmed")
    assert status_of(db, OLD) is None and status_of(db, NEW) == "confirmed"
    assert events_of(db, NEW) == ["address_change_requested", "address_changed"]
    assert done.mails == ()  # a move is not a sign-up: no welcome


def test_pending_moves_but_is_still_not_subscribed(flows: SubscriberFlows, db: Database) -> None:
    _, token = request_change(flows)
    set_pending(db)
    done = flows.confirm(token, WEB)
    assert done is not None and done.outcome == "changed_not_subscribed"
    assert status_of(db, NEW) == "pending" and status_of(db, OLD) is None
    assert suppression_of(db, NEW) is None


def test_pending_loses_the_sign_up_links_that_went_to_the_old_address(
    flows: SubscriberFlows, db: Database
) -> None:
    _, token = request_change(flows)
    set_pending(db)
    [sign_up] = subscribe(flows, OLD)
    assert sign_up.kind == "confirmation"
    done = flows.confirm(token, WEB)
    assert done is not None and done.outcome == "changed_not_subscribed"
    assert flows.confirm(confirm_token(sign_up), WEB) is None
    assert status_of(db, NEW) == "pending"


@pytest.mark.parametrize("how", ["unsubscribed", "complained"])
def test_someone_who_left_since_keeps_everything_as_it_was(
    flows: SubscriberFlows, db: Database, how: str
) -> None:
    view, token = request_change(flows)
    if how == "unsubscribed":
        assert flows.unsubscribe(token_in(view.unsubscribe_url), WEB)
    else:
        force_status(db, OLD, how)
    before = snapshot(db)
    done = flows.confirm(token, WEB)
    assert done is not None and done.outcome == "left_before_change"
    assert status_of(db, OLD) == how and status_of(db, NEW) is None
    assert suppression_of(db, OLD) == how
    # Only the used link is gone: nothing else was written.
    after = snapshot(db)
    assert after["subscribers"] == before["subscribers"]
    assert after["consent_events"] == before["consent_events"]
    assert flows.confirm(token, WEB) is None  # spent


def test_bounced_moves_and_receives_the_newsletter_again_at_the_new_address(
    flows: SubscriberFlows, db: Database
) -> None:
    _, token = request_change(flows)
    force_status(db, OLD, "bounced")
    done = flows.confirm(token, WEB)
    assert done is not None and done.outcome == "changed"
    assert (done.subscriber.email, done.subscriber.status) == (NEW, "confirmed")
    assert suppression_of(db, NEW) is None
    assert suppression_of(db, OLD) == "bounced"  # the old address stays unmailed
    assert events_of(db, NEW) == ["address_change_requested", "address_changed", "confirmed"]


def test_erased_leaves_a_dead_link(
    flows: SubscriberFlows, db: Database, make_settings: Callable[..., Settings], clock: FixedClock
) -> None:
    _, token = request_change(flows)
    ListManagement(make_settings(), db, clock=clock).erase(OLD, Requester("cli"))
    before = snapshot(db)
    assert flows.pending_confirmation(token) is None
    assert flows.confirm(token, WEB) is None
    assert snapshot(db) == before
    assert status_of(db, NEW) is None


def test_an_address_that_is_on_the_list_meanwhile_changes_nothing(
    flows: SubscriberFlows, db: Database
) -> None:
    _, token = request_change(flows)
    subscribe(flows, NEW)  # meanwhile someone signs up with it
    before = snapshot(db)
    done = flows.confirm(token, WEB)
    assert done is not None and done.outcome == "address_in_use"
    assert done.subscriber.email == OLD and status_of(db, OLD) == "confirmed"
    after = snapshot(db)
    assert after["subscribers"] == before["subscribers"]
    assert after["consent_events"] == before["consent_events"]
    assert flows.confirm(token, WEB) is None  # spent
