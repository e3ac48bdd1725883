"""Finding people for the staff pages: a page of matches, the count per status, an id's address.

Everything here only reads, inside the caller's transaction. Staff pages name a person by
public id only (never by address or row id), so `email_of` turns that id back into the
address the rest of the list is keyed on.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from newsletter.core.errors import InvalidInput
from newsletter.core.paging import Paging, count_pages
from newsletter.core.records import record_from
from subscribers.lookup import SubscriberSummary
from subscribers.models import STATUSES, Subscriber


@dataclass(frozen=True)
class SubscriberLine(SubscriberSummary):
    """One subscriber as a list of search results shows it, named by their public id."""

    public_id: str


@dataclass(frozen=True)
class SearchResults(Paging):
    """One page of matches, newest first; `total` counts the matches on every page."""

    lines: list[SubscriberLine]
    total: int
    page_size: int

    @property
    def first(self) -> int:
        """The position of the page's first match among all (from 1); 0 when none."""
        return (self.number - 1) * self.page_size + 1 if self.lines else 0

    @property
    def last(self) -> int:
        return (self.number - 1) * self.page_size + len(self.lines)


def _matching(text: str, status: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    wanted = text.strip()
    if wanted:
        # email_key is the casefolded address, so a casefolded search text finds it with a
        # plain LIKE on every backend; names go through lower() (ILIKE on PostgreSQL).
        conditions.append(
            or_(
                Subscriber.email_key.contains(wanted.casefold(), autoescape=True),
                Subscriber.name.icontains(wanted, autoescape=True),
            )
        )
    if status is not None:
        conditions.append(Subscriber.status == status)
    return conditions


def search_subscribers(
    session: Session, *, text: str, status: str | None, page: int, page_size: int
) -> SearchResults | None:
    """Page `page` of the subscribers whose address or name contains `text` (any case),
    newest first; None past the last page (page 1 always exists).

    `text` is matched literally: `%` and `_` are no wildcards. An empty `text` matches
    everyone.
    """
    if status is not None and status not in STATUSES:
        raise InvalidInput({"status": "unknown"})
    if page < 1 or page_size < 1:
        raise ValueError(f"page {page} of size {page_size}: need page >= 1, page_size >= 1")
    conditions = _matching(text, status)
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*conditions)) or 0
    page_count = count_pages(total, page_size)
    if page > page_count:
        return None
    rows = session.scalars(
        select(Subscriber)
        .where(*conditions)
        .order_by(Subscriber.created_at.desc(), Subscriber.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    lines = [record_from(SubscriberLine, row) for row in rows]
    return SearchResults(
        number=page, page_count=page_count, lines=lines, total=total, page_size=page_size
    )


def subscriber_counts(session: Session) -> dict[str, int]:
    """How many addresses are in each status, every status listed (zero included)."""
    counts = dict.fromkeys(STATUSES, 0)
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    for status, count in rows:
        counts[status] = int(count)
    return counts


def email_of(session: Session, public_id: str) -> str | None:
    """The address of the subscriber with `public_id` (the id staff pages link by)."""
    return session.scalar(select(Subscriber.email).where(Subscriber.public_id == public_id))
