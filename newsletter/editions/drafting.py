"""The job's steps on real settings: fetch the feeds, draft an edition, write a preview.

The CLI, the demo and (later) the scheduler call these; each takes the settings, the
database and the clock it should use, and returns plain results for the caller to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import __version__
from newsletter.content.fetching import make_http_client
from newsletter.content.ingest import FeedReport, ingest_feeds
from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import NewsletterError
from newsletter.core.templating import template_environment
from newsletter.editions.lifecycle import (
    OPEN_STATES,
    create_draft,
    get_edition,
    latest_edition,
    new_article_candidates,
)
from newsletter.editions.models import Edition
from newsletter.editions.preview import PreviewFiles, edition_content, write_preview


def fetch_all(settings: Settings, database: Database, *, clock: Clock) -> list[FeedReport]:
    """Fetch every configured feed; one failing feed never stops the others."""
    if not settings.feed_sources:
        raise NewsletterError("no feeds configured: add [feed] urls = [...] to the settings")
    with make_http_client(
        timeout=settings.feed.timeout_seconds,
        user_agent=f"rvj-newsletter/{__version__} (+{settings.site.base_url})",
    ) as client:
        return ingest_feeds(
            database,
            settings.feed_sources,
            client=client,
            clock=clock,
            max_bytes=settings.feed.max_bytes,
            timeout=settings.feed.timeout_seconds,
        )


def edition_subject(settings: Settings, now: datetime) -> str:
    """The default subject of an edition drafted at `now`, from email/subject.txt.j2."""
    template = template_environment(settings).get_template("email/subject.txt.j2")
    return " ".join(template.render(site=settings.site, date=now).split())


@dataclass(frozen=True)
class DraftResult:
    """What `draft` did: the new edition's number, or None when too little was new."""

    number: int | None
    new_articles: int
    left_out: int
    superseded: tuple[int, ...]
    min_new_articles: int


def draft_edition(
    settings: Settings,
    database: Database,
    *,
    clock: Clock,
    intro_markdown: str | None = None,
    force: bool = False,
) -> DraftResult:
    """Create a draft from the new articles, unless fewer than min_new_articles are new."""
    now = clock()
    subject = edition_subject(settings, now)
    with database.session() as session:
        outcome = create_draft(
            session,
            now=now,
            subject=subject,
            max_articles=settings.feed.max_articles,
            min_new_articles=settings.feed.min_new_articles,
            intro_markdown=intro_markdown,
            force=force,
        )
        number = outcome.edition.id if outcome.edition else None
    return DraftResult(
        number=number,
        new_articles=outcome.new_articles,
        left_out=outcome.left_out,
        superseded=outcome.superseded,
        min_new_articles=settings.feed.min_new_articles,
    )


def current_draft(session: Session, *, min_new_articles: int) -> int | None:
    """The newest open draft, when fewer articles than a draft needs came in after it."""
    draft = session.scalars(
        select(Edition).where(Edition.state.in_(OPEN_STATES)).order_by(Edition.id.desc()).limit(1)
    ).first()
    if draft is None:
        return None
    newer = sum(
        1
        for candidate in new_article_candidates(session)
        if candidate.first_seen_at > draft.created_at
    )
    return draft.id if newer < max(1, min_new_articles) else None


def preview_edition(
    settings: Settings, database: Database, number: int | None, out_dir: Path
) -> PreviewFiles:
    """Write edition N (default: the newest) as HTML and text with sample recipient values."""
    with database.session() as session:
        edition = latest_edition(session) if number is None else get_edition(session, number)
        content = edition_content(edition)
    try:
        return write_preview(
            content, settings, environment=template_environment(settings), out_dir=out_dir
        )
    except OSError as exc:
        raise NewsletterError(f"cannot write the preview to {out_dir}: {exc.strerror}") from exc
