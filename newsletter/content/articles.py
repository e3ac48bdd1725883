"""The stored articles read back, newest first, as plain values for listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from newsletter.content.models import Article


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
    return [
        ArticleSummary(
            id=article.id,
            feed=article.feed.url,
            guid=article.guid,
            title=article.title,
            link=article.link,
            author=article.author,
            categories=tuple(article.categories),
            published_at=article.published_at,
            updated_at=article.updated_at,
            first_seen_at=article.first_seen_at,
            image_url=article.image_url,
        )
        for article in rows
    ]
