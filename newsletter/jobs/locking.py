"""A lock in the database, so that only one process at a time works through the job.

Two schedulers on one database, or a scheduler and a person at a terminal, must not
draft and send at once. `try_lock` picks the kind of lock by database:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a connection of
  its own, held for the run. The server drops it when that connection closes, so a
  holder that is killed never blocks anyone. The key is the lock's name within the
  current schema, so installations that share a database in separate schemas do not
  block each other.
- SQLite: a row in `locks` with a lease. Taking it is one statement (insert, or take
  over a row whose lease ran out); a thread renews the lease while the holder works;
  releasing deletes the row. A row whose holder ran on this host and is gone is taken
  over at once, without waiting for the lease.

The row lock works on PostgreSQL too (the tests run it there); the advisory lock is
preferred there because it needs no lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, String, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.core.clock import Clock
from newsletter.core.db import Database
from newsletter.core.errors import NewsletterError, StorageError
from newsletter.core.models import Base
from newsletter.core.processes import process_is_gone, process_token

logger = logging.getLogger(__name__)

# The lock that `newsletter run`, the scheduler (and `newsletter send`) share.
JOB_LOCK = "job"
# How long a row lock holds without renewal, and how often its holder renews it.
LEASE = timedelta(minutes=10)
RENEW_EVERY_SECONDS = 60.0
# The first key of every advisory lock of this product ("nljb"), beside the key of the name.
ADVISORY_NAMESPACE = 0x6E6C6A62


class Lock(Base):
    """A named lock held by one process until `expires_at`, unless it renews the lease."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


@dataclass(frozen=True)
class LockTaken:
    """Someone else holds the lock; who and since when, where the database knows."""

    name: str
    holder: str | None = None
    since: datetime | None = None

    def describe(self) -> str:
        """One line, e.g. "another run holds the lock (host:123:ab since 2026-11-17 08:00 UTC)"."""
        if self.holder is None:
            return "another run holds the lock"
        since = f" since {self.since:%Y-%m-%d %H:%M} UTC" if self.since else ""
        return f"another run holds the lock ({self.holder}{since})"


class HeldLock(Protocol):
    """A lock this process holds until it calls `release`."""

    name: str
    holder: str

    def release(self) -> None: ...


class RowLock:
    """A `locks` row this process holds; a daemon thread renews its lease."""

    def __init__(
        self,
        database: Database,
        name: str,
        *,
        holder: str,
        clock: Clock,
        lease: timedelta,
        renew_every: float,
    ) -> None:
        self.name = name
        self.holder = holder
        self._database = database
        self._clock = clock
        self._lease = lease
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._keep_renewing, args=(renew_every,), name=f"lock-{name}", daemon=True
        )
        self._renewer.start()

    def _keep_renewing(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                if not self.renew():
                    logger.error("lost the %r lock: another process took it over", self.name)
                    return
            except SQLAlchemyError as exc:  # try again at the next turn
                logger.warning("could not renew the %r lock: %s", self.name, exc)

    def renew(self) -> bool:
        """Extend the lease from now; False when the row is no longer ours."""
        with self._database.session() as session:
            result = session.execute(
                update(Lock)
                .where(Lock.name == self.name, Lock.holder == self.holder)
                .values(expires_at=self._clock() + self._lease)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self) -> None:
        self._stop.set()
        self._renewer.join()
        try:
            with self._database.session() as session:
                session.execute(
                    delete(Lock).where(Lock.name == self.name, Lock.holder == self.holder)
                )
        except SQLAlchemyError as exc:  # the lease runs out by itself
            logger.warning("could not release the %r lock: %s", self.name, exc)


def acquire_row_lock(
    database: Database,
    name: str,
    *,
    holder: str,
    clock: Clock,
    lease: timedelta = LEASE,
    renew_every: float = RENEW_EVERY_SECONDS,
) -> RowLock | LockTaken:
    """Take the `locks` row `name`: insert it, or take over an expired or orphaned one."""
    outcome: LockTaken | bool | None = None
    # A second attempt only when the row went away between the two statements.
    for _attempt in range(2):
        outcome = _take_row(database, name, holder=holder, now=clock(), lease=lease)
        if outcome is not None:
            break
    if outcome is True:
        return RowLock(
            database, name, holder=holder, clock=clock, lease=lease, renew_every=renew_every
        )
    return outcome if isinstance(outcome, LockTaken) else LockTaken(name)


def _take_row(
    database: Database, name: str, *, holder: str, now: datetime, lease: timedelta
) -> LockTaken | bool | None:
    """True when taken; LockTaken when held by someone alive; None when gone meanwhile."""
    values = {"name": name, "holder": holder, "acquired_at": now, "expires_at": now + lease}
    with database.session() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert(Lock) if dialect == "postgresql" else sqlite.insert(Lock)
        statement = insert.values(values)
        upsert = statement.on_conflict_do_update(
            index_elements=[Lock.name],
            set_={
                "holder": statement.excluded.holder,
                "acquired_at": statement.excluded.acquired_at,
                "expires_at": statement.excluded.expires_at,
            },
            where=Lock.expires_at < now,
        ).returning(Lock.holder)
        if session.execute(upsert).scalar_one_or_none() == holder:
            return True
        current = session.execute(
            select(Lock.holder, Lock.acquired_at).where(Lock.name == name)
        ).one_or_none()
        if current is None:
            return None
        other, since = current
        if not process_is_gone(other):
            return LockTaken(name, other, since)
        result = session.execute(
            update(Lock)
            .where(Lock.name == name, Lock.holder == other)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return LockTaken(name, other, since)
    logger.warning("took over the %r lock from %s, which no longer runs", name, other)
    return True


_TRY_ADVISORY = text(
    "SELECT pg_try_advisory_lock(:namespace, hashtext(current_schema() || ':' || :name))"
)
_RELEASE_ADVISORY = text(
    "SELECT pg_advisory_unlock(:namespace, hashtext(current_schema() || ':' || :name))"
)


class AdvisoryLock:
    """A PostgreSQL advisory lock, held by a connection this lock keeps open."""

    def __init__(self, connection: Connection, name: str, *, holder: str) -> None:
        self.name = name
        self.holder = holder
        self._connection: Connection | None = connection

    @property
    def connection(self) -> Connection | None:
        """The connection that holds the lock (closing it releases the lock)."""
        return self._connection

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(
                _RELEASE_ADVISORY, {"namespace": ADVISORY_NAMESPACE, "name": self.name}
            )
            connection.commit()
        except SQLAlchemyError as exc:
            # Never hand a connection that may still hold the lock back to the pool.
            logger.warning("could not release the %r lock: %s", self.name, exc)
            connection.invalidate()
        finally:
            connection.close()


def acquire_advisory_lock(
    database: Database, name: str, *, holder: str
) -> AdvisoryLock | LockTaken:
    """Take PostgreSQL's advisory lock for `name` on a connection of its own."""
    connection = database.engine.connect()
    try:
        taken = connection.execute(
            _TRY_ADVISORY, {"namespace": ADVISORY_NAMESPACE, "name": name}
        ).scalar_one()
        # Session-level: the lock outlives this transaction; the connection idles outside one.
        connection.commit()
    except BaseException:
        connection.invalidate()
        connection.close()
        raise
    if not taken:
        connection.close()
        return LockTaken(name)
    return AdvisoryLock(connection, name, holder=holder)


def try_lock(
    database: Database,
    name: str = JOB_LOCK,
    *,
    clock: Clock,
    holder: str | None = None,
) -> HeldLock | LockTaken:
    """Take lock `name` without waiting: the held lock, or who holds it."""
    holder = holder or process_token()
    try:
        if database.engine.dialect.name == "postgresql":
            return acquire_advisory_lock(database, name, holder=holder)
        return acquire_row_lock(database, name, holder=holder, clock=clock)
    except SQLAlchemyError as exc:
        raise StorageError(
            f"cannot take the {name!r} lock: {exc.__class__.__name__}: {exc}"
        ) from exc


@contextmanager
def job_lock(database: Database, *, clock: Clock, name: str = JOB_LOCK) -> Iterator[HeldLock]:
    """Hold lock `name` for a block; NewsletterError at once when another run holds it."""
    held = try_lock(database, name, clock=clock)
    if isinstance(held, LockTaken):
        raise NewsletterError(f"{held.describe()}; try again when it is done")
    try:
        yield held
    finally:
        held.release()
