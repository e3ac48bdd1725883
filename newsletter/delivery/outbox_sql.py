"""The outbox's hot path: claims and outcomes in hand-written SQL per dialect.

A send claims every row and records every outcome. For these few statements building,
compiling and reading through SQLAlchemy cost more than the database's own work, so
they are written out once per dialect and run on the driver's connection. `{name}`
marks a parameter; driver_sql turns it into the driver's placeholder. The states and
their transitions are drawn in delivery/outbox.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy.pool import PoolProxiedConnection

from newsletter.delivery.outbox import LEASE


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, to be written with others in one transaction."""

    row_id: int
    state: str  # "sent", "retry" or "failed"
    reply: str
    next_attempt_at: datetime | None = None


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
    "s.name, s.status, s.email_key FROM outbox o LEFT JOIN subscribers s ON s.id = o.subscriber_id "
    "WHERE o.id IN ({ids}) ORDER BY o.id"
)
_SUPPRESSED_SQL = "SELECT address_hash FROM suppressions WHERE address_hash IN ({hashes})"
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
    email_key: str | None


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


def suppressed_among(
    connection: PoolProxiedConnection, hashes: Sequence[str], *, dialect: str
) -> set[str]:
    """Which of these address hashes are on the suppression list."""
    if not hashes:
        return set()
    names = {f"h{index}": value for index, value in enumerate(hashes)}
    placeholders = ", ".join(f"{{{name}}}" for name in names)
    cursor = connection.cursor()
    try:
        cursor.execute(driver_sql(_SUPPRESSED_SQL.format(hashes=placeholders), dialect), names)
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()


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
