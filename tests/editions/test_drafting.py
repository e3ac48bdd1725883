"""Drafting: which articles a draft gets, and what becomes of the open drafts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from newsletter.content.models import Article
from newsletter.core.db import Database
from newsletter.editions.drafting import Candidate, create_draft, select_new_articles
from newsletter.editions.lifecycle import latest_edition, move_edition
from newsletter.editions.models import Edition
from tests.support.clock import FixedClock
from tests.support.drafts import T0, add_articles, draft, titles


def test_selection_takes_the_newest_and_counts_the_rest() -> None:
    candidates = [
        Candidate(1, T0, T0),
        Candidate(2, T0 + timedelta(days=2), T0),
        Candidate(3, None, T0 + timedelta(days=1)),  # no date: first-seen time stands in
        Candidate(4, T0 + timedelta(days=3), T0),
    ]
    selection = select_new_articles(candidates, max_articles=3)
    assert selection.article_ids == (4, 2, 3)
    assert selection.left_out == 1


def test_first_draft_holds_the_newest_max_articles(db: Database, clock: FixedClock) -> None:
    with db.session() as session:
        add_articles(session, 8, seen=clock())
        edition = draft(session, clock.advance(minutes=1))
        assert edition is not None
        assert titles(edition) == [f"Artikel {i}" for i in (7, 6, 5, 4, 3)]
        assert edition.state == "draft"


def test_too_few_new_articles_creates_nothing(db: Database, clock: FixedClock) -> None:
    with db.session() as session:
        add_articles(session, 2, seen=clock())
        outcome = create_draft(
            session, now=clock(), subject="x", max_articles=5, min_new_articles=3
        )
        assert outcome.edition is None and outcome.new_articles == 2
        assert session.scalar(select(func.count()).select_from(Edition)) == 0
        forced = draft(session, clock(), min_new_articles=3, force=True)
        assert forced is not None and len(forced.entries) == 2


def test_next_draft_holds_only_articles_first_seen_after_the_sent_one(
    db: Database, clock: FixedClock
) -> None:
    with db.session() as session:
        add_articles(session, 8, seen=clock())
        first = draft(session, clock.advance(minutes=1))
        assert first is not None
        move_edition(first, "sending", now=clock())
        move_edition(first, "sent", now=clock.advance(minutes=5))
        # Seen before the first draft but not chosen then: never comes back.
        assert draft(session, clock.advance(days=1)) is None
        add_articles(session, 2, seen=clock.advance(hours=1), start=100)
        second = draft(session, clock.advance(minutes=1))
        assert second is not None
        assert titles(second) == ["Artikel 101", "Artikel 100"]


def test_an_article_is_never_in_two_sent_editions(db: Database, clock: FixedClock) -> None:
    with db.session() as session:
        ids = add_articles(session, 3, seen=clock())
        first = draft(session, clock.advance(minutes=1))
        assert first is not None
        move_edition(first, "sending", now=clock())
        # An edit moves the article's first-seen time forward in no way, but even if a
        # row were seen "again" later, being in a sent edition keeps it out.
        for article in session.scalars(select(Article).where(Article.id.in_(ids))):
            article.first_seen_at = clock.advance(minutes=1)
        move_edition(first, "sent", now=clock())
        add_articles(session, 1, seen=clock.advance(minutes=1), start=50)
        second = draft(session, clock.advance(minutes=1))
        assert second is not None
        assert titles(second) == ["Artikel 50"]


def test_articles_seen_while_an_edition_was_waiting_go_in_the_next(
    db: Database, clock: FixedClock
) -> None:
    with db.session() as session:
        add_articles(session, 2, seen=clock())
        first = draft(session, clock.advance(minutes=1))
        assert first is not None
        add_articles(session, 1, seen=clock.advance(hours=2), start=10)  # after drafting
        move_edition(first, "sending", now=clock.advance(hours=1))
        move_edition(first, "sent", now=clock())
        second = draft(session, clock.advance(days=7))
        assert second is not None
        assert titles(second) == ["Artikel 10"]


def test_a_new_draft_supersedes_open_ones_and_keeps_their_intro(
    db: Database, clock: FixedClock
) -> None:
    with db.session() as session:
        add_articles(session, 2, seen=clock())
        first = draft(session, clock.advance(minutes=1), intro_markdown="Hallo **allemaal**")
        assert first is not None
        add_articles(session, 1, seen=clock.advance(days=1), start=10)
        outcome = create_draft(
            session, now=clock.advance(minutes=1), subject="x", max_articles=5, min_new_articles=1
        )
        second = outcome.edition
        assert second is not None
        assert outcome.superseded == (first.id,)
        assert first.state == "superseded" and first.superseded_by == second.id
        assert second.intro_markdown == "Hallo **allemaal**"
        assert titles(second) == ["Artikel 10", "Artikel 1", "Artikel 0"]
        assert latest_edition(session).id == second.id
