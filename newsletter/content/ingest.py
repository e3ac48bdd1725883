"""Pulling the configured feeds into the articles table: fetch (I/O), parse (pure), store.

Each feed is handled on its own: a failure is recorded against that feed and reported,
and the next feed goes on. A feed's articles and its conditional-GET validators are
stored in one transaction, so a crash or a parse error never leaves a half-read feed
behind, and a validator is only kept once the body it belongs to has been stored (or
a 304 would hide articles we never saw).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import __version__
from newsletter.content.entries import FeedEntry
from newsletter.content.feeds import parse_feed
from newsletter.content.fetching import fetch_feed, make_http_client
from newsletter.content.models import Article, Feed
from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import FeedError, NewsletterError
from newsletter.core.text import one_line
from newsletter.core.tls import feed_verification

Outcome = Literal["stored", "unchanged", "failed"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedReport:
    """What happened to one feed in one fetch run."""

    source: str
    outcome: Outcome
    new: int = 0
    updated: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"


@dataclass(frozen=True)
class StoreCounts:
    new: int
    updated: int


def _feed_row(session: Session, source: str, now: datetime) -> Feed:
    feed = session.scalars(select(Feed).where(Feed.url == source)).one_or_none()
    if feed is None:
        feed = Feed(url=source, created_at=now)
        session.add(feed)
        session.flush()
    return feed


def _apply(article: Article, entry: FeedEntry) -> None:
    article.link = entry.link
    article.title = entry.title
    article.author = entry.author
    article.summary_html = entry.summary_html
    article.content_html = entry.content_html
    article.categories = list(entry.categories)
    article.image_url = entry.image_url
    article.image_alt = entry.image_alt
    article.published_at = entry.published_at
    article.updated_at = entry.updated_at
    article.content_hash = entry.content_hash


def store_entries(
    session: Session, feed: Feed, entries: Sequence[FeedEntry], *, now: datetime
) -> StoreCounts:
    """Insert new entries and update edited ones; an edit keeps the first-seen time.

    `entries` have distinct guids: parse_feed keeps the first of any repeated one.
    """
    guids = [entry.guid for entry in entries]
    existing: dict[str, Article] = {}
    # Chunked so that a feed of hundreds of entries stays under bind-parameter limits.
    for start in range(0, len(guids), 500):
        chunk = guids[start : start + 500]
        query = select(Article).where(Article.feed_id == feed.id, Article.guid.in_(chunk))
        existing.update((article.guid, article) for article in session.scalars(query))
    new = updated = 0
    for entry in entries:
        article = existing.get(entry.guid)
        if article is None:
            article = Article(feed_id=feed.id, guid=entry.guid, first_seen_at=now)
            _apply(article, entry)
            article.last_seen_at = now
            session.add(article)
            new += 1
            continue
        article.last_seen_at = now
        if article.content_hash != entry.content_hash:
            _apply(article, entry)
            updated += 1
    session.flush()
    return StoreCounts(new=new, updated=updated)


def ingest_feed(
    database: Database,
    source: str,
    *,
    client: httpx.Client,
    clock: Clock,
    max_bytes: int,
    timeout: float,
) -> FeedReport:
    """Fetch, parse and store one feed; a FeedError is recorded and reported, not raised."""
    with database.session() as session:
        feed = _feed_row(session, source, clock())
        etag, last_modified = feed.etag, feed.last_modified
    try:
        with _failures_of_this_feed(source):
            result = fetch_feed(
                source,
                client=client,
                etag=etag,
                last_modified=last_modified,
                max_bytes=max_bytes,
                timeout=timeout,
            )
            parsed = None
            if not result.not_modified:
                parsed = parse_feed(result.body, url=result.url, content_type=result.content_type)
    except FeedError as exc:
        message = str(exc)
        with database.session() as session:
            feed = _feed_row(session, source, clock())
            feed.last_fetched_at = clock()
            feed.last_error = message
        return FeedReport(source, "failed", error=message)
    if parsed is None:
        with database.session() as session:
            feed = _feed_row(session, source, clock())
            feed.last_fetched_at = feed.last_success_at = clock()
            feed.last_error = None
        return FeedReport(source, "unchanged")

    now = clock()
    with database.session() as session:
        feed = _feed_row(session, source, now)
        counts = store_entries(session, feed, parsed.entries, now=now)
        feed.title = (parsed.title or "")[:500] or feed.title
        feed.etag, feed.last_modified = result.etag, result.last_modified
        feed.last_fetched_at = feed.last_success_at = now
        feed.last_error = None
    return FeedReport(
        source, "stored", new=counts.new, updated=counts.updated, warnings=parsed.warnings
    )


@contextlib.contextmanager
def _failures_of_this_feed(source: str) -> Iterator[None]:
    """Any failure while fetching or parsing made this feed's FeedError.

    A feed is untrusted input to libraries we do not control: whatever they raise, even
    running out of memory, fails this feed and never the fetch of the others.
    """
    try:
        yield
    except FeedError:
        raise
    except MemoryError as exc:
        raise FeedError(f"{source}: ran out of memory reading the feed") from exc
    except Exception as exc:
        logger.exception("reading the feed %s failed", source)
        reason = one_line(str(exc)) or type(exc).__name__
        raise FeedError(f"{source}: could not be read: {reason}") from exc


def ingest_feeds(
    database: Database,
    sources: Sequence[str],
    *,
    client: httpx.Client,
    clock: Clock,
    max_bytes: int,
    timeout: float,
) -> list[FeedReport]:
    """Ingest every feed in turn; one failing feed never stops the others."""
    return [
        ingest_feed(
            database, source, client=client, clock=clock, max_bytes=max_bytes, timeout=timeout
        )
        for source in sources
    ]


def fetch_all(settings: Settings, database: Database, *, clock: Clock) -> list[FeedReport]:
    """Fetch every configured feed; one failing feed never stops the others."""
    if not settings.feed_sources:
        raise NewsletterError("no feeds configured: add [feed] urls = [...] to the settings")
    with make_http_client(
        timeout=settings.feed.timeout_seconds,
        user_agent=f"rvj-newsletter/{__version__} (+{settings.site.base_url})",
        verify=feed_verification(settings),
    ) as client:
        return ingest_feeds(
            database,
            settings.feed_sources,
            client=client,
            clock=clock,
            max_bytes=settings.feed.max_bytes,
            timeout=settings.feed.timeout_seconds,
        )
