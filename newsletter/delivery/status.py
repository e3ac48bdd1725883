"""How an edition's delivery stands: counts per state, and the rows that did not go out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from newsletter.core.db import Database
from newsletter.delivery.outbox import OutboxRow, StateCounts, state_counts
from newsletter.editions.lifecycle import get_edition
from subscribers.models import Subscriber


@dataclass(frozen=True)
class DeliveryProblem:
    """A row that failed for good or waits for a retry, and the server's last reply."""

    email: str | None  # None once the subscriber was erased
    state: str  # "failed" or "retry"
    attempts: int
    last_reply: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class EditionStatus:
    """An edition's state, its outbox counts, and its problems in outbox order."""

    number: int
    state: str
    sent_at: datetime | None
    counts: StateCounts
    problems: tuple[DeliveryProblem, ...]


def edition_status(database: Database, number: int) -> EditionStatus:
    """Where edition N stands; EditionError when there is no such edition."""
    with database.session() as session:
        edition = get_edition(session, number)
        counts = state_counts(session, number)
        rows = session.execute(
            select(
                Subscriber.email,
                OutboxRow.state,
                OutboxRow.attempts,
                OutboxRow.last_reply,
                OutboxRow.next_attempt_at,
            )
            .select_from(OutboxRow)
            .outerjoin(Subscriber, Subscriber.id == OutboxRow.subscriber_id)
            .where(OutboxRow.edition_id == number, OutboxRow.state.in_(("failed", "retry")))
            .order_by(OutboxRow.id)
        ).all()
        return EditionStatus(
            number=number,
            state=edition.state,
            sent_at=edition.sent_at,
            counts=counts,
            problems=tuple(DeliveryProblem(*row) for row in rows),
        )
