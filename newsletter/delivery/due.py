"""Which editions have deliveries due: what the job's retry step and the workers pick up."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from newsletter.delivery.outbox import OutboxRow
from newsletter.editions.models import Edition


def editions_waiting(session: Session, *, now: datetime) -> list[int]:
    """Editions being sent that have deliveries due now, or none left open at all (a send
    that stopped just before it could mark the edition sent)."""
    due = or_(
        OutboxRow.state == "pending",
        and_(OutboxRow.state == "retry", OutboxRow.next_attempt_at <= now),
        and_(OutboxRow.state == "sending", OutboxRow.lease_until < now),
    )
    with_due = (
        select(OutboxRow.edition_id)
        .join(Edition, Edition.id == OutboxRow.edition_id)
        .where(Edition.state == "sending", due)
        .distinct()
    )
    open_rows = exists().where(
        OutboxRow.edition_id == Edition.id,
        OutboxRow.state.in_(("pending", "sending", "retry")),
    )
    without_open = select(Edition.id).where(Edition.state == "sending", ~open_rows)
    numbers = set(session.scalars(with_due)) | set(session.scalars(without_open))
    return sorted(numbers)
