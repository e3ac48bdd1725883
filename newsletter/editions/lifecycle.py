"""The states an edition moves through, and looking editions up.

    draft ──> approved ──> sending ──> sent
      │  <──────┘            ^
      ├──────────────────────┘
      └──> superseded   (a newer draft replaced it before it went out; approved too)

Which articles a new draft gets is for editions/drafting.py to say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from newsletter.core.errors import EditionError
from newsletter.core.records import record_from
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
# The largest integer key SQLite and PostgreSQL's bigint hold; a larger one overflows.
MAX_ROW_ID = 2**63 - 1


def is_row_id(number: int) -> bool:
    """Whether `number` could be a row's key (positive, not too large to look up)."""
    return 0 < number <= MAX_ROW_ID


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
    if state in ("draft", "superseded"):
        # A plan is for what was approved; a change or a newer draft cancels it.
        edition.send_at = edition.planned_by = None
    elif state == "sent":
        edition.sent_at = now


def get_edition(session: Session, number: int, *, lock: bool = False) -> Edition:
    """Edition `number` with its articles loaded; EditionError when there is none.

    With `lock`, no other transaction can change it, or write at all on SQLite, until
    this session's transaction ends: for changes that depend on its state and on its
    outbox (two senders of one edition, one finishing it while the other adds a late
    subscriber). PostgreSQL locks the row; SQLite takes its one write lock now, with a
    write that changes nothing, since its driver starts a transaction at the first write,
    not at the first read.
    """
    if not is_row_id(number):
        raise EditionError(f"no edition {number}")
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


@dataclass(frozen=True)
class EditionSummary:
    """One edition as a listing shows it, with how many articles it holds."""

    number: int
    state: str
    subject: str
    created_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    superseded_by: int | None
    articles: int


@dataclass(frozen=True)
class EditionEntry:
    """One article of an edition, at its place in the edition."""

    position: int  # from 0
    article_id: int
    title: str
    link: str | None
    published_at: datetime | None
    categories: tuple[str, ...]


@dataclass(frozen=True)
class EditionDescription:
    """One edition in full: its summary, its introduction and its articles in order."""

    summary: EditionSummary
    intro_markdown: str
    entries: tuple[EditionEntry, ...]


def _summary(edition: Edition, articles: int) -> EditionSummary:
    return record_from(EditionSummary, edition, number=edition.id, articles=articles)


def list_editions(session: Session) -> list[EditionSummary]:
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
    return [_summary(edition, int(count)) for edition, count in rows]


def describe_edition(session: Session, number: int) -> EditionDescription:
    """Edition `number` with its articles in order; EditionError when there is none."""
    edition = get_edition(session, number)
    entries = tuple(
        record_from(
            EditionEntry, entry.article, position=entry.position, article_id=entry.article.id
        )
        for entry in edition.entries
    )
    return EditionDescription(
        summary=_summary(edition, len(entries)),
        intro_markdown=edition.intro_markdown,
        entries=entries,
    )
