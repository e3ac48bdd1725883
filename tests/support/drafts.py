"""Articles in the database and drafts made of them, for the tests of editions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.content.models import Article, Feed
from newsletter.editions.drafting import create_draft
from newsletter.editions.models import Edition

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def add_articles(
    session: Session, count: int, *, seen: datetime, start: int = 0, feed_url: str = "f"
) -> list[int]:
    feed = session.scalars(select(Feed).where(Feed.url == feed_url)).one_or_none()
    if feed is None:
        feed = Feed(url=feed_url, created_at=seen)
        session.add(feed)
        session.flush()
    articles = [
        Article(
            feed_id=feed.id,
            guid=f"guid-{start + i}",
            title=f"Artikel {start + i}",
            categories=[],
            published_at=T0 + timedelta(days=start + i),
            first_seen_at=seen,
            last_seen_at=seen,
            content_hash=str(i),
        )
        for i in range(count)
    ]
    session.add_all(articles)
    session.flush()
    return [article.id for article in articles]


def draft(session: Session, now: datetime, **options: object) -> Edition | None:
    params: dict[str, object] = {"max_articles": 5, "min_new_articles": 1, "subject": "Nieuws"}
    params.update(options)
    return create_draft(session, now=now, **params).edition  # type: ignore[arg-type]


def titles(edition: Edition) -> list[str]:
    return [entry.article.title for entry in edition.entries]
