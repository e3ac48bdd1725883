"""Editions: the states an edition may move through, and looking editions up."""

from __future__ import annotations

import pytest

from newsletter.core.db import Database
from newsletter.core.errors import EditionError
from newsletter.editions.lifecycle import (
    TRANSITIONS,
    describe_edition,
    get_edition,
    latest_edition,
    list_editions,
    move_edition,
)
from newsletter.editions.models import Edition
from tests.support.clock import FixedClock
from tests.support.drafts import T0, add_articles, draft


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (state, target)
        for state in TRANSITIONS
        for target in TRANSITIONS
        if target not in TRANSITIONS[state]
    ],
)
def test_moves_not_listed_are_refused(start: str, target: str) -> None:
    edition = Edition(id=7, state=start, subject="x", created_at=T0, updated_at=T0)
    with pytest.raises(EditionError, match=f"edition 7 is {start}; it cannot become {target}"):
        move_edition(edition, target, now=T0)
    assert edition.state == start


def test_sent_editions_record_when(db: Database, clock: FixedClock) -> None:
    with db.session() as session:
        add_articles(session, 1, seen=clock())
        edition = draft(session, clock())
        assert edition is not None
        move_edition(edition, "approved", now=clock.advance(minutes=1))
        assert edition.approved_at == clock()
        move_edition(edition, "sending", now=clock.advance(minutes=1))
        move_edition(edition, "sent", now=clock.advance(minutes=1))
        assert edition.sent_at == clock()
    with db.session() as session:
        stored = get_edition(session, edition.id)
        assert stored.sent_at == clock() and stored.sent_at.tzinfo is not None


def test_listing_and_lookup(db: Database, clock: FixedClock) -> None:
    with db.session() as session:
        with pytest.raises(EditionError, match="no edition yet"):
            latest_edition(session)
        add_articles(session, 3, seen=clock())
        edition = draft(session, clock())
        assert edition is not None
        assert [(e.number, e.articles) for e in list_editions(session)] == [(edition.id, 3)]
        described = describe_edition(session, edition.id)
        assert [entry.position for entry in described.entries] == [0, 1, 2]
        assert described.summary == list_editions(session)[0]
        with pytest.raises(EditionError, match="no edition 99"):
            get_edition(session, 99)
