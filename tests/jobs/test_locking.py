"""The job's lock: one holder at a time, a lease that runs out, PostgreSQL's advisory lock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter.core.db import Database, open_database
from newsletter.core.errors import NewsletterError
from newsletter.core.processes import process_is_gone, process_token
from newsletter.jobs.locking import (
    AdvisoryLock,
    HeldLock,
    Lock,
    LockTaken,
    RowLock,
    acquire_advisory_lock,
    acquire_row_lock,
    job_lock,
    try_lock,
)
from tests.support.clock import FixedClock
from tests.support.databases import POSTGRES_URL_ENV
from tests.support.waiting import wait_until


def held_row(db: Database, holder: str, clock: FixedClock, **options: float) -> RowLock:
    lock = acquire_row_lock(db, "job", holder=holder, clock=clock, **options)  # type: ignore[arg-type]
    assert isinstance(lock, RowLock), lock
    return lock


def a_dead_holder() -> str:
    """The holder name of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()[:60]}:{child.pid}:deadbeef0000"


def test_a_second_holder_is_refused_while_the_first_holds(db: Database, clock: FixedClock) -> None:
    first = held_row(db, "host-a:1:aaaa", clock)
    second = acquire_row_lock(db, "job", holder="host-b:2:bbbb", clock=clock)
    assert second == LockTaken("job", "host-a:1:aaaa", clock())
    assert "host-a:1:aaaa since 2026-11-17 08:00 UTC" in second.describe()
    # Another name is another lock.
    other = acquire_row_lock(db, "other", holder="host-b:2:bbbb", clock=clock)
    assert isinstance(other, RowLock)
    other.release()
    first.release()
    again = held_row(db, "host-b:2:bbbb", clock)
    again.release()
    with db.session() as session:
        assert session.scalars(select(Lock)).all() == []


def test_an_expired_lease_is_taken_over(db: Database, clock: FixedClock) -> None:
    killed = held_row(db, "host-a:1:aaaa", clock, lease=timedelta(minutes=10))  # type: ignore[arg-type]
    assert isinstance(
        acquire_row_lock(db, "job", holder="host-b:2:bbbb", clock=clock.later(minutes=9)),
        LockTaken,
    )
    taken = held_row(db, "host-b:2:bbbb", clock.later(minutes=2))
    with db.session() as session:
        row = session.get_one(Lock, "job")
        assert (row.holder, row.acquired_at) == ("host-b:2:bbbb", clock())
        assert row.expires_at == clock() + timedelta(minutes=10)
    # The old holder wakes up: releasing does not remove the new holder's row.
    killed.release()
    with db.session() as session:
        assert session.get_one(Lock, "job").holder == "host-b:2:bbbb"
    taken.release()


def test_the_holder_renews_its_lease_while_it_works(db: Database, clock: FixedClock) -> None:
    lock = held_row(db, "host-a:1:aaaa", clock, renew_every=0.02)  # type: ignore[arg-type]
    clock.advance(minutes=9)

    def renewed() -> bool:
        with db.session() as session:
            return session.get_one(Lock, "job").expires_at == clock() + timedelta(minutes=10)

    wait_until(renewed, what="the holder to renew its lease")
    # Past the first lease, but renewed: still held.
    assert isinstance(
        acquire_row_lock(db, "job", holder="host-b:2:bbbb", clock=clock.later(minutes=5)),
        LockTaken,
    )
    lock.release()


def test_a_holder_that_died_on_this_host_is_taken_over_at_once(
    db: Database, clock: FixedClock
) -> None:
    dead = a_dead_holder()
    assert process_is_gone(dead)
    assert not process_is_gone(process_token())
    assert not process_is_gone("elsewhere:1:aaaa")
    held_row(db, dead, clock)  # never released: its process is gone
    mine = held_row(db, process_token(), clock)
    mine.release()


def test_job_lock_says_who_holds_it(db: Database, clock: FixedClock) -> None:
    with job_lock(db, clock=clock) as held:
        assert held.holder.split(":")[1] == str(os.getpid())
        with (
            pytest.raises(NewsletterError, match="another run holds the lock"),
            job_lock(db, clock=clock),
        ):
            pass  # pragma: no cover
    with job_lock(db, clock=clock):
        pass


def postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")


def test_postgresql_uses_an_advisory_lock_released_with_its_connection(
    db: Database, clock: FixedClock
) -> None:
    postgres_only(db)
    first = try_lock(db, clock=clock)
    assert isinstance(first, AdvisoryLock)
    assert try_lock(db, clock=clock) == LockTaken("job")
    with db.session() as session:  # no row: the lock lives in the server
        assert session.scalars(select(Lock)).all() == []
    first.release()
    second = acquire_advisory_lock(db, "job", holder="b")
    assert isinstance(second, AdvisoryLock) and second.connection is not None
    # The holder dies without releasing: its connection closes, and the lock goes with it.
    second.connection.invalidate()

    def free() -> HeldLock | None:
        lock = try_lock(db, clock=clock)
        return None if isinstance(lock, LockTaken) else lock

    wait_until(free, what="the lock to go with its connection").release()


def test_advisory_locks_of_two_schemas_do_not_meet(db: Database, clock: FixedClock) -> None:
    postgres_only(db)
    held = try_lock(db, clock=clock)
    assert isinstance(held, AdvisoryLock)
    # The same database, another schema (another installation): another lock.
    elsewhere = open_database(os.environ[POSTGRES_URL_ENV], upgrade=False)
    try:
        other = acquire_advisory_lock(elsewhere, "job", holder="x")
        assert isinstance(other, AdvisoryLock)
        other.release()
    finally:
        elsewhere.dispose()
        held.release()
