"""Drafting an edition: choosing the new articles, and making a draft of them.

An article is used once it is in an edition that is sending or sent; it is never put in
another draft after that. A new draft holds the articles first seen since the newest
used edition was drafted (on the first run: the newest `max_articles` of all).

`draft_edition` and `current_draft` work on real settings, for the CLI, the demo and
the job; each takes the settings, the database and the clock it should use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.content.models import Article
from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.templating import template_environment
from newsletter.editions.lifecycle import OPEN_STATES, USED_STATES, move_edition
from newsletter.editions.models import Edition, EditionArticle


@dataclass(frozen=True)
class Candidate:
    """What selection needs to know of an article."""

    article_id: int
    published_at: datetime | None
    first_seen_at: datetime


@dataclass(frozen=True)
class Selection:
    article_ids: tuple[int, ...]
    left_out: int


def select_new_articles(candidates: Sequence[Candidate], *, max_articles: int) -> Selection:
    """The newest `max_articles` candidates, newest first (published, else first seen)."""
    ordered = sorted(
        candidates,
        key=lambda c: (c.published_at or c.first_seen_at, c.first_seen_at, c.article_id),
        reverse=True,
    )
    chosen = ordered[:max_articles]
    return Selection(tuple(c.article_id for c in chosen), len(ordered) - len(chosen))


def new_article_candidates(session: Session) -> list[Candidate]:
    """Articles first seen since the newest used edition was drafted, and never used."""
    # Only digests count: an announcement may quote an article without using it up.
    used = (Edition.state.in_(USED_STATES), Edition.kind == "digest")
    used_editions = select(Edition.id).where(*used)
    cutoff = session.scalar(select(func.max(Edition.created_at)).where(*used))
    used_articles = select(EditionArticle.article_id).where(
        EditionArticle.edition_id.in_(used_editions)
    )
    query = select(Article.id, Article.published_at, Article.first_seen_at).where(
        Article.id.not_in(used_articles)
    )
    if cutoff is not None:
        query = query.where(Article.first_seen_at > cutoff)
    return [Candidate(*row) for row in session.execute(query)]


@dataclass(frozen=True)
class DraftOutcome:
    """The result of asking for a draft: the new edition, or why there is none."""

    edition: Edition | None
    new_articles: int
    left_out: int
    superseded: tuple[int, ...]


def create_draft(
    session: Session,
    *,
    now: datetime,
    subject: str,
    max_articles: int,
    min_new_articles: int,
    intro_markdown: str | None = None,
    force: bool = False,
) -> DraftOutcome:
    """Make a draft of the new articles, superseding open drafts; none if too few are new.

    An intro is carried over from the draft it supersedes when none is given, so staff
    who wrote one do not lose it when the scheduled job drafts again.
    """
    selection = select_new_articles(new_article_candidates(session), max_articles=max_articles)
    count = len(selection.article_ids)
    if count < min_new_articles and not force:
        return DraftOutcome(None, count, selection.left_out, ())

    # A planned edition stays: staff chose it and its moment (editions/planning.py); so
    # does an announcement, which is no digest.
    open_editions = session.scalars(
        select(Edition)
        .where(Edition.state.in_(OPEN_STATES), Edition.send_at.is_(None))
        .where(Edition.kind == "digest")
        .order_by(Edition.id)
    ).all()
    if intro_markdown is None:
        intro_markdown = open_editions[-1].intro_markdown if open_editions else ""
    edition = Edition(
        state="draft",
        subject=subject,
        intro_markdown=intro_markdown,
        created_at=now,
        updated_at=now,
    )
    edition.entries = [
        EditionArticle(article_id=article_id, position=position)
        for position, article_id in enumerate(selection.article_ids)
    ]
    session.add(edition)
    session.flush()
    for older in open_editions:
        move_edition(older, "superseded", now=now)
        older.superseded_by = edition.id
    return DraftOutcome(
        edition, count, selection.left_out, tuple(older.id for older in open_editions)
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
        select(Edition)
        .where(Edition.state.in_(OPEN_STATES), Edition.kind == "digest")
        .order_by(Edition.id.desc())
        .limit(1)
    ).first()
    if draft is None:
        return None
    newer = sum(
        1
        for candidate in new_article_candidates(session)
        if candidate.first_seen_at > draft.created_at
    )
    return draft.id if newer < max(1, min_new_articles) else None
