"""The send's outbox store: how its one driver connection commits outcomes."""

from __future__ import annotations

from newsletter.core.db import Database
from newsletter.delivery.store import OutcomeWriter
from tests.support.clock import FixedClock


def test_outcomes_are_synced_to_disk_before_the_next_message(
    db: Database, clock: FixedClock
) -> None:
    # The power-cut promise: on SQLite the send's connection commits with synchronous=FULL
    # (2), so an outcome is on disk before the next body's final dot goes out; the other
    # connections keep NORMAL (1). PostgreSQL syncs each commit itself while
    # synchronous_commit is on (its default).
    sqlite = db.engine.dialect.name == "sqlite"
    query = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
    writer = OutcomeWriter(db, holder="test", clock=clock)
    try:
        level = writer.transaction(lambda connection: connection.cursor().execute(query).fetchone())
    finally:
        writer.close()
    assert level == ((2,) if sqlite else ("on",))
    if sqlite:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql(query).scalar() == 1
