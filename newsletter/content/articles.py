"""The stored articles read back, newest first, as plain values for listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from newsletter.content.models import Article
from newsletter.core.records import record_from


@dataclass(frozen=True)
class ArticleSummary:
    """One stored article as a listing shows it: where it came from and what it is."""

    id: int
    feed: str  # the feed's URL or path, as configured
    guid: str
    title: str
    link: str | None
    author: str | None
    categories: tuple[str, ...]
    published_at: datetime | None
    updated_at: datetime | None
    first_seen_at: datetime
    image_url: str | None


def list_articles(session: Session, *, limit: int) -> list[ArticleSummary]:
    """The newest `limit` articles: by publication date, then by when we first saw them."""
    rows = session.scalars(
        select(Article)
        .options(selectinload(Article.feed))
        .order_by(Article.published_at.desc(), Article.first_seen_at.desc())
        .limit(limit)
    )
    return [record_from(ArticleSummary, article, feed=article.feed.url) for article in rows]
