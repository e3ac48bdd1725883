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
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    CheckConstraint,
    Connection,
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
from sqlalchemy.pool import PoolProxiedConnection

from newsletter.core.models import Base
from newsletter.core.processes import process_is_gone
from newsletter.editions.models import Edition

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


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, to be written with others in one transaction."""

    row_id: int
    state: str  # "sent", "retry" or "failed"
    reply: str
    next_attempt_at: datetime | None = None


# -- the hot path ---------------------------------------------------------------------
#
# A send claims every row and records every outcome. For these few statements building,
# compiling and reading through SQLAlchemy cost more than the database's own work, so
# they are written out once per dialect and run on the driver's connection. `{name}`
# marks a parameter; driver_sql turns it into the driver's placeholder.

_CLAIM_SQL = {
    # One arm per state, each walking the (edition_id, state) index in id order and
    # stopping at the limit, so a claim reads about what it takes: one OR over the states
    # made SQLite scan and sort every row of the edition for each claim (quadratic in the
    # size of a send). The re-check leaves the edition out (a row never changes it): with
    # it SQLite would walk the edition's index instead of looking the ids up.
    "sqlite": (
        "UPDATE outbox SET state = 'sending', claim = {claim}, lease_until = {lease}, "
        "updated_at = {now} WHERE id IN ("
        "SELECT id FROM (SELECT id FROM outbox WHERE edition_id = {edition} "
        "AND state = 'pending' ORDER BY id LIMIT {limit}) "
        "UNION ALL SELECT id FROM (SELECT id FROM outbox WHERE edition_id = {edition} "
        "AND state = 'retry' AND next_attempt_at <= {now} ORDER BY id LIMIT {limit}) "
        "UNION ALL SELECT id FROM (SELECT id FROM outbox WHERE edition_id = {edition} "
        "AND state = 'sending' AND lease_until < {now} ORDER BY id LIMIT {limit}) "
        "ORDER BY id LIMIT {limit}) "
        "AND (state = 'pending' OR (state = 'retry' AND next_attempt_at <= {now}) "
        "OR (state = 'sending' AND lease_until < {now})) RETURNING id"
    ),
    # The same arms, each locked with FOR UPDATE SKIP LOCKED (which a UNION cannot
    # take, a CTE can): senders never wait for each other's rows, and a row another
    # sender took in the meantime fails the re-check instead of being claimed twice.
    # Rows an arm locked beyond the limit are free again at the commit.
    "postgresql": (
        "WITH pending AS (SELECT id FROM outbox WHERE edition_id = {edition} "
        "AND state = 'pending' ORDER BY id LIMIT {limit} FOR UPDATE SKIP LOCKED), "
        "retry AS (SELECT id FROM outbox WHERE edition_id = {edition} AND state = 'retry' "
        "AND next_attempt_at <= {now} ORDER BY id LIMIT {limit} FOR UPDATE SKIP LOCKED), "
        "expired AS (SELECT id FROM outbox WHERE edition_id = {edition} "
        "AND state = 'sending' AND lease_until < {now} ORDER BY id LIMIT {limit} "
        "FOR UPDATE SKIP LOCKED) "
        "UPDATE outbox SET state = 'sending', claim = {claim}, lease_until = {lease}, "
        "updated_at = {now} WHERE id IN (SELECT id FROM (SELECT id FROM pending "
        "UNION ALL SELECT id FROM retry UNION ALL SELECT id FROM expired) AS due "
        "ORDER BY id LIMIT {limit}) "
        "AND (state = 'pending' OR (state = 'retry' AND next_attempt_at <= {now}) "
        "OR (state = 'sending' AND lease_until < {now})) RETURNING id"
    ),
}
_CLAIMED_SQL = (
    "SELECT o.id, o.variant, o.first_attempt_at, o.attempts, s.id, s.public_id, s.email, "
    "s.name, s.status FROM outbox o LEFT JOIN subscribers s ON s.id = o.subscriber_id "
    "WHERE o.id IN ({ids}) ORDER BY o.id"
)
_SKIP_SQL = (
    "UPDATE outbox SET state = 'skipped', last_reply = {reason}, claim = NULL, "
    "updated_at = {now} WHERE id = {row} AND claim = {claim}"
)
_OUTCOME_SQL = (
    "UPDATE outbox SET state = {state}, last_reply = {reply}, sent_at = {sent}, "
    "next_attempt_at = {retry_at}, claim = NULL, attempts = attempts + 1, "
    "first_attempt_at = COALESCE(first_attempt_at, {now}), updated_at = {now} "
    "WHERE id = {row} AND claim = {claim} AND state = 'sending'"
)
_INSERT_SQL = (
    "INSERT INTO outbox (edition_id, subscriber_id, variant, state, last_reply, attempts, "
    "created_at, updated_at) VALUES ({edition}, {subscriber}, {variant}, {state}, {reply}, "
    "0, {now}, {now})"
)


@functools.cache
def driver_sql(sql: str, dialect: str) -> str:
    """`sql` with named placeholders in the driver's style (sqlite3 and psycopg take a
    mapping of parameters)."""
    names = re.findall(r"\{(\w+)\}", sql)
    style = ":{}" if dialect == "sqlite" else "%({})s"
    return sql.format(**{name: style.format(name) for name in names})


def _sqlite_time(value: datetime | None) -> str | None:
    # The text SQLAlchemy stores for a DateTime on SQLite (UTC, as UtcDateTime keeps it),
    # so that comparisons in SQL see one format.
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _as_is(value: datetime | None) -> datetime | None:
    return value


def _time_in(dialect: str) -> Callable[[datetime | None], object]:
    """How the driver takes a time."""
    return _sqlite_time if dialect == "sqlite" else _as_is


def _time_out(value: object) -> datetime | None:
    """A time as the driver returns it (text on SQLite), as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ClaimedRow(NamedTuple):
    """A row just claimed, with what its message needs of the subscriber (None: erased)."""

    row_id: int
    variant: str
    first_attempt_at: datetime | None
    attempts: int
    subscriber_id: int | None
    public_id: str | None
    email: str | None
    name: str | None
    status: str | None


def claim_rows(
    connection: PoolProxiedConnection,
    *,
    dialect: str,
    edition_id: int,
    claim: str,
    now: datetime,
    limit: int,
) -> list[ClaimedRow]:
    """Claim up to `limit` rows that are due, oldest first; the caller commits."""
    time = _time_in(dialect)
    cursor = connection.cursor()
    try:
        cursor.execute(
            driver_sql(_CLAIM_SQL[dialect], dialect),
            {
                "claim": claim,
                "lease": time(now + LEASE),
                "now": time(now),
                "edition": edition_id,
                "limit": limit,
            },
        )
        ids = sorted(row[0] for row in cursor.fetchall())
        if not ids:
            return []
        names = {f"i{index}": row_id for index, row_id in enumerate(ids)}
        cursor.execute(
            driver_sql(_CLAIMED_SQL.format(ids=", ".join(f"{{{n}}}" for n in names)), dialect),
            names,
        )
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return [ClaimedRow(row[0], row[1], _time_out(row[2]), *row[3:]) for row in rows]


def skip_rows(
    connection: PoolProxiedConnection,
    row_ids: Sequence[int],
    *,
    dialect: str,
    claim: str,
    now: datetime,
    reason: str,
) -> None:
    """Mark claimed rows skipped (their subscriber left the list); the caller commits."""
    if not row_ids:
        return
    stamp = _time_in(dialect)(now)
    cursor = connection.cursor()
    try:
        cursor.executemany(
            driver_sql(_SKIP_SQL, dialect),
            [{"reason": reason, "now": stamp, "row": row, "claim": claim} for row in row_ids],
        )
    finally:
        cursor.close()


def record_outcomes(
    connection: PoolProxiedConnection,
    outcomes: Sequence[Outcome],
    *,
    dialect: str,
    holder: str,
    now: datetime,
) -> None:
    """Write the outcomes of rows `holder` claimed (rows it lost are left alone); the
    caller commits. One executemany: SQLAlchemy's execute and commit would double the
    cost of a one-row commit."""
    if not outcomes:
        return
    time = _time_in(dialect)
    stamp = time(now)
    cursor = connection.cursor()
    try:
        cursor.executemany(
            driver_sql(_OUTCOME_SQL, dialect),
            [
                {
                    "state": outcome.state,
                    "reply": outcome.reply,
                    "sent": stamp if outcome.state == "sent" else None,
                    "retry_at": time(outcome.next_attempt_at),
                    "now": stamp,
                    "row": outcome.row_id,
                    "claim": holder,
                }
                for outcome in outcomes
            ],
        )
    finally:
        cursor.close()


class NewRow(NamedTuple):
    """One recipient to add to an edition's outbox."""

    subscriber_id: int
    variant: str
    state: str  # "pending", or "skipped" with the reason in `reply`
    reply: str | None = None


def add_rows(
    connection: Connection, edition_id: int, rows: Sequence[NewRow], *, now: datetime
) -> None:
    """Insert outbox rows in one executemany (a snapshot adds one per subscriber)."""
    if not rows:
        return
    dialect = connection.dialect.name
    stamp = _time_in(dialect)(now)
    connection.exec_driver_sql(
        driver_sql(_INSERT_SQL, dialect),
        [
            {
                "edition": edition_id,
                "subscriber": row.subscriber_id,
                "variant": row.variant,
                "state": row.state,
                "reply": row.reply,
                "now": stamp,
            }
            for row in rows
        ],
    )
