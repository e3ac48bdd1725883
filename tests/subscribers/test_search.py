"""Finding people for the staff pages: pages of matches, counts per status, ids to addresses."""

from __future__ import annotations

import pytest

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput
from subscribers.consent import Requester
from subscribers.management import ListManagement
from subscribers.models import STATUSES
from subscribers.search import email_of
from tests.support.clock import FixedClock

CLI = Requester(source="cli")


@pytest.fixture
def people(settings: Settings, db: Database, clock: FixedClock) -> ListManagement:
    return ListManagement(settings, db, clock=clock)


def add(people: ListManagement, clock: FixedClock, *emails: str) -> None:
    for email in emails:
        people.add(email, name=None, themes=[], requester=CLI, confirmed=True, consent_note="t")
        clock.advance(minutes=1)  # each one newer than the one before


def test_matches_come_newest_first_a_page_at_a_time(
    people: ListManagement, clock: FixedClock
) -> None:
    add(people, clock, *(f"lezer{n}@example.org" for n in range(5)))
    first = people.search(text="LEZER", status=None, page=1, page_size=2)
    last = people.search(text="lezer", status="confirmed", page=3, page_size=2)
    assert first is not None and last is not None
    assert [line.email for line in first.lines] == ["lezer4@example.org", "lezer3@example.org"]
    assert (first.total, first.page_count, first.first, first.last) == (5, 3, 1, 2)
    assert (first.previous, first.next) == (None, 2)
    assert [line.email for line in last.lines] == ["lezer0@example.org"]
    assert (last.first, last.last, last.previous, last.next) == (5, 5, 2, None)


def test_past_the_last_page_there_is_none_but_page_one_always_is(
    people: ListManagement, clock: FixedClock
) -> None:
    add(people, clock, "lezer@example.org")
    assert people.search(text="", status=None, page=2, page_size=50) is None
    empty = people.search(text="niemand", status=None, page=1, page_size=50)
    assert empty is not None and (empty.lines, empty.total, empty.first) == ([], 0, 0)


def test_an_unknown_status_is_invalid_input(people: ListManagement) -> None:
    with pytest.raises(InvalidInput):
        people.search(text="", status="nonsense", page=1, page_size=50)


def test_counts_name_every_status(people: ListManagement, clock: FixedClock) -> None:
    add(people, clock, "een@example.org", "twee@example.org")
    assert people.counts() == {**dict.fromkeys(STATUSES, 0), "confirmed": 2}


def test_a_person_is_found_by_public_id_only(
    people: ListManagement, clock: FixedClock, db: Database
) -> None:
    add(people, clock, "ouder@example.org")
    results = people.search(text="ouder", status=None, page=1, page_size=50)
    assert results is not None
    [line] = results.lines
    person = people.person(line.public_id)
    assert person is not None and person.email == "ouder@example.org"
    with db.session() as session:
        assert email_of(session, line.public_id) == "ouder@example.org"
    assert people.person("onbekend") is None
    assert people.person("ouder@example.org") is None
