"""The outbox: one row per (edition, subscriber), and the only way rows change state.

    pending ──claim──> sending ──250──> sent
       ^                  │  ├──4xx──> retry ──(due)──> sending ...  (until the deadline)
       │                  │  └──5xx──> failed             (subscriber bounced, suppressed)
       └── lease expired ─┘            skipped (left the list, or no article for them)

A sender claims rows by writing its claim token and a lease time into them in one
statement (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer at a time), so any
number of senders share an edition without two ever holding one row. A sender records
each outcome before it starts its next transaction on that connection: after a crash,
the only rows that can go out twice are those in flight, one per open connection. Rows
of a dead sender come back when their lease runs out (at once when it ran on this host).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    CheckConstraint,
    Connection,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from newsletter.models import Base
from newsletter.processes import process_is_gone

OUTBOX_STATES = ("pending", "sending", "sent", "retry", "failed", "skipped")
FINAL_STATES = ("sent", "failed", "skipped")
LEASE = timedelta(minutes=2)
# The variant of subscribers who chose no themes: they get every article.
ALL_THEMES = "*"


class OutboxRow(Base):
    """One recipient of one edition, and where its delivery stands."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id", name="uq_outbox_edition_subscriber"),
        CheckConstraint(
            "state IN ('pending', 'sending', 'sent', 'retry', 'failed', 'skipped')", name="state"
        ),
        Index("ix_outbox_edition_state", "edition_id", "state"),
        Index("ix_outbox_claim", "claim"),
        Index("ix_outbox_sent_at", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="RESTRICT"))
    # Null once the subscriber was erased: the row is then skipped, never sent.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    variant: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    claim: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    first_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


def release_dead_claims(session: Session, edition_id: int, *, now: datetime) -> int:
    """Hand back rows claimed by senders on this host that no longer run."""
    claims = session.scalars(
        select(OutboxRow.claim)
        .where(OutboxRow.edition_id == edition_id, OutboxRow.state == "sending")
        .distinct()
    ).all()
    dead = [claim for claim in claims if claim and process_is_gone(claim)]
    if not dead:
        return 0
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.edition_id == edition_id, OutboxRow.claim.in_(dead))
        .where(OutboxRow.state == "sending")
        .values(lease_until=now - timedelta(seconds=1))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _claimable(edition_id: int, now: datetime) -> ColumnElement[bool]:
    return and_(
        OutboxRow.edition_id == edition_id,
        or_(
            OutboxRow.state == "pending",
            and_(OutboxRow.state == "retry", OutboxRow.next_attempt_at <= now),
            and_(OutboxRow.state == "sending", OutboxRow.lease_until < now),
        ),
    )


def claim_rows(
    session: Session, edition_id: int, *, claim: str, now: datetime, limit: int
) -> list[int]:
    """Claim up to `limit` rows that are due; returns their ids (oldest first)."""
    condition = _claimable(edition_id, now)
    candidates = select(OutboxRow.id).where(condition).order_by(OutboxRow.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    result = session.execute(
        update(OutboxRow)
        # The condition again: on PostgreSQL a row another sender took in the meantime
        # fails it on re-check instead of being claimed twice.
        .where(OutboxRow.id.in_(candidates.scalar_subquery()), condition)
        .values(state="sending", claim=claim, lease_until=now + LEASE, updated_at=now)
        .returning(OutboxRow.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars().all())


def renew_lease(session: Session, *, claim: str, now: datetime) -> None:
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.claim == claim, OutboxRow.state == "sending")
        .values(lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )


def release_claim(session: Session, *, claim: str, now: datetime) -> int:
    """Give back rows claimed but not yet attempted (a sender stopping early)."""
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.claim == claim, OutboxRow.state == "sending")
        .values(lease_until=now - timedelta(seconds=1), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _finish(session: Session, row_id: int, holder: str, now: datetime, **values: object) -> bool:
    """End a claimed row's attempt; False when `holder` no longer holds the row."""
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id, OutboxRow.claim == holder, OutboxRow.state == "sending")
        .values(
            updated_at=now,
            claim=None,
            attempts=OutboxRow.attempts + 1,
            first_attempt_at=func.coalesce(OutboxRow.first_attempt_at, now),
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_sent(session: Session, row_id: int, *, claim: str, now: datetime, reply: str) -> bool:
    return _finish(
        session,
        row_id,
        claim,
        now,
        state="sent",
        sent_at=now,
        last_reply=reply,
    )


def mark_retry(
    session: Session, row_id: int, *, claim: str, now: datetime, reply: str, at: datetime
) -> bool:
    return _finish(
        session,
        row_id,
        claim,
        now,
        state="retry",
        next_attempt_at=at,
        last_reply=reply,
    )


def mark_failed(session: Session, row_id: int, *, claim: str, now: datetime, reply: str) -> bool:
    return _finish(
        session,
        row_id,
        claim,
        now,
        state="failed",
        last_reply=reply,
    )


def mark_skipped(
    session: Session, row_ids: Sequence[int], *, claim: str, now: datetime, reason: str
) -> None:
    if not row_ids:
        return
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_(row_ids), OutboxRow.claim == claim)
        .values(state="skipped", last_reply=reason, claim=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class StateCounts:
    """How many rows of an edition are in each state."""

    pending: int = 0
    sending: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sending + self.sent + self.retry + self.failed + self.skipped

    @property
    def open(self) -> int:
        """Rows that may still go out: pending, in flight, or waiting for a retry."""
        return self.pending + self.sending + self.retry


def state_counts(session: Session, edition_id: int) -> StateCounts:
    rows = session.execute(
        select(OutboxRow.state, func.count())
        .where(OutboxRow.edition_id == edition_id)
        .group_by(OutboxRow.state)
    )
    return StateCounts(**{state: int(count) for state, count in rows})


def sent_times_since(session: Session, since: datetime) -> Iterator[datetime]:
    """When each message of any edition went out since `since` (for the hourly cap)."""
    query = select(OutboxRow.sent_at).where(OutboxRow.sent_at >= since).order_by(OutboxRow.sent_at)
    for sent_at in session.scalars(query):
        if sent_at is not None:
            yield sent_at


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, to be written with others in one transaction."""

    row_id: int
    state: str  # "sent", "retry" or "failed"
    reply: str
    next_attempt_at: datetime | None = None


_OUTCOME_SQL = (
    "UPDATE outbox SET state = {p}, last_reply = {p}, sent_at = {p}, next_attempt_at = {p}, "
    "claim = NULL, attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, {p}), "
    "updated_at = {p} WHERE id = {p} AND claim = {p} AND state = 'sending'"
)


def _sqlite_time(value: datetime | None) -> str | None:
    # The text SQLAlchemy stores for a DateTime on SQLite (UTC, as UtcDateTime keeps it),
    # so that comparisons in SQL see one format.
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _as_is(value: datetime | None) -> datetime | None:
    return value


def record_outcomes(
    connection: Connection, outcomes: Sequence[Outcome], *, holder: str, now: datetime
) -> None:
    """Write the outcomes of rows `holder` claimed (rows it lost are left alone).

    The hot path of a send: one driver-level executemany of a statement written once,
    without the ORM or a compile per call.
    """
    if not outcomes:
        return
    sqlite = connection.dialect.name == "sqlite"
    sql = _OUTCOME_SQL.format(p="?" if sqlite else "%s")
    time = _sqlite_time if sqlite else _as_is
    stamp = time(now)
    connection.exec_driver_sql(
        sql,
        [
            (
                outcome.state,
                outcome.reply,
                stamp if outcome.state == "sent" else None,
                time(outcome.next_attempt_at),
                stamp,
                stamp,
                outcome.row_id,
                holder,
            )
            for outcome in outcomes
        ],
    )
