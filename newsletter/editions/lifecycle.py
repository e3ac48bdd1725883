"""Editions: choosing the new articles for a draft, and the states an edition moves through.

    draft ──> approved ──> sending ──> sent
      │  <──────┘            ^
      ├──────────────────────┘
      └──> superseded   (a newer draft replaced it before it went out; approved too)

An article is used once it is in an edition that is sending or sent; it is never put in
another draft after that. A new draft holds the articles first seen since the newest
used edition was drafted (on the first run: the newest `max_articles` of all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from newsletter.content.models import Article
from newsletter.core.errors import EditionError
from newsletter.editions.models import Edition, EditionArticle

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"approved", "sending", "superseded"}),
    "approved": frozenset({"draft", "sending", "superseded"}),
    "sending": frozenset({"sent"}),
    "sent": frozenset(),
    "superseded": frozenset(),
}
OPEN_STATES = ("draft", "approved")
USED_STATES = ("sending", "sent")


def move_edition(edition: Edition, state: str, *, now: datetime) -> None:
    """Change an edition's state, refusing any move TRANSITIONS does not list."""
    if state not in TRANSITIONS.get(edition.state, frozenset()):
        raise EditionError(f"edition {edition.id} is {edition.state}; it cannot become {state}")
    edition.state = state
    edition.updated_at = now
    if state == "approved":
        edition.approved_at = now
    elif state == "draft":
        edition.approved_at = None
    elif state == "sent":
        edition.sent_at = now


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
    used_editions = select(Edition.id).where(Edition.state.in_(USED_STATES))
    cutoff = session.scalar(
        select(func.max(Edition.created_at)).where(Edition.state.in_(USED_STATES))
    )
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

    open_editions = session.scalars(
        select(Edition).where(Edition.state.in_(OPEN_STATES)).order_by(Edition.id)
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


def get_edition(session: Session, number: int, *, lock: bool = False) -> Edition:
    """Edition `number` with its articles loaded; EditionError when there is none.

    With `lock`, no other transaction can change it, or write at all on SQLite, until
    this session's transaction ends: for changes that depend on its state and on its
    outbox (two senders of one edition, one finishing it while the other adds a late
    subscriber). PostgreSQL locks the row; SQLite takes its one write lock now, with a
    write that changes nothing, since its driver starts a transaction at the first write,
    not at the first read.
    """
    query = (
        select(Edition)
        .where(Edition.id == number)
        .options(selectinload(Edition.entries).selectinload(EditionArticle.article))
    )
    if lock:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(
                update(Edition)
                .where(Edition.id == number)
                .values(updated_at=Edition.updated_at)
                .execution_options(synchronize_session=False)
            )
        else:
            query = query.with_for_update(of=Edition)
    edition = session.scalars(query).one_or_none()
    if edition is None:
        raise EditionError(f"no edition {number}")
    return edition


def latest_edition(session: Session) -> Edition:
    """The newest edition that is not superseded; EditionError when there is none yet."""
    number = session.scalar(select(func.max(Edition.id)).where(Edition.state != "superseded"))
    if number is None:
        raise EditionError("there is no edition yet; run 'newsletter draft' first")
    return get_edition(session, number)


def list_editions(session: Session) -> list[tuple[Edition, int]]:
    """Every edition, newest first, with its article count."""
    counts = (
        select(EditionArticle.edition_id, func.count().label("articles"))
        .group_by(EditionArticle.edition_id)
        .subquery()
    )
    rows = session.execute(
        select(Edition, func.coalesce(counts.c.articles, 0))
        .outerjoin(counts, counts.c.edition_id == Edition.id)
        .order_by(Edition.id.desc())
    )
    return [(edition, int(count)) for edition, count in rows]
