"""The outbox: one row per (edition, subscriber), and the only way rows change state.

    pending ──claim──> sending ──250──> sent
       ^                  │  ├──4xx──> retry ──(due)──> sending ...  (until the deadline)
       │                  │  └──5xx──> failed             (subscriber bounced, suppressed)
       └── given back ────┘            skipped (left the list, or no article for them)

Given back: a row its sender did not try (it stopped early, or the server could not be
reached) or whose sender died goes back to pending, or to a retry due at once if it was
tried before; a sender that vanished without a trace loses its rows when their lease
runs out, and they are claimed from `sending` again.

A sender claims rows by writing its claim token and a lease time into them in one
statement (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer at a time), so any
number of senders share an edition without two ever holding one row. A sender records
each outcome before it starts its next transaction on that connection: after a crash,
the only rows that can go out twice are those in flight, one per open connection. Rows
of a dead sender come back when their lease runs out (at once when it ran on this host).
The claim and outcome statements, which every message runs, are written out per dialect
in delivery/outbox_sql.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.models import Base
from newsletter.core.processes import process_is_gone
from newsletter.editions.models import Edition

OUTBOX_STATES = ("pending", "sending", "sent", "retry", "failed", "skipped")
FINAL_STATES = ("sent", "failed", "skipped")
# How often a worker (delivery/workers.py) looks in the outbox for rows that are due.
DEFAULT_POLL_SECONDS = 5.0
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
        # The only index besides the unique one: each index on a column an outcome
        # changes costs a fifth of the outcome's commit (migration 0007). With id in it,
        # a claim reads due rows in order and stops at its limit.
        Index("ix_outbox_edition_state_id", "edition_id", "state", "id"),
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


def _given_back(now: datetime) -> dict[str, Any]:
    """The values that make a claimed row wait again: pending when it was never tried,
    else a retry due now (its first attempt and count stay, and with them its deadline)."""
    never_tried = OutboxRow.attempts == 0
    return {
        "state": case((never_tried, "pending"), else_="retry"),
        "next_attempt_at": case((never_tried, None), else_=now),
        "claim": None,
        "lease_until": None,
        "updated_at": now,
    }


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
        .values(_given_back(now))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def renew_lease(session: Session, edition_id: int, *, claim: str, now: datetime) -> None:
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.edition_id == edition_id, OutboxRow.state == "sending")
        .where(OutboxRow.claim == claim)
        .values(lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )


def give_back_row(session: Session, row_id: int, *, claim: str, now: datetime) -> None:
    """Give back one claimed row that was not sent (the server could not be reached)."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id, OutboxRow.claim == claim, OutboxRow.state == "sending")
        .values(_given_back(now))
        .execution_options(synchronize_session=False)
    )


def release_claim(session: Session, edition_id: int, *, claim: str, now: datetime) -> int:
    """Give back rows claimed but not yet attempted (a sender stopping early)."""
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.edition_id == edition_id, OutboxRow.state == "sending")
        .where(OutboxRow.claim == claim)
        .values(_given_back(now))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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
    """When each message of any edition went out since `since` (for the hourly cap).

    Only editions still sending, or sent since then, can hold such rows: their sent rows
    are read through the (edition, state) index, not the whole outbox.
    """
    recent = select(Edition.id).where(
        or_(Edition.state == "sending", and_(Edition.state == "sent", Edition.sent_at >= since))
    )
    query = (
        select(OutboxRow.sent_at)
        .where(OutboxRow.edition_id.in_(recent), OutboxRow.state == "sent")
        .where(OutboxRow.sent_at >= since)
        .order_by(OutboxRow.sent_at)
    )
    for sent_at in session.scalars(query):
        if sent_at is not None:
            yield sent_at
