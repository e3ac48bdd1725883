"""The database handle: whether it answers, for the health check; SQLite's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from newsletter.core.db import Database, create_db_engine


def test_an_open_database_is_reachable(db: Database) -> None:
    assert db.is_reachable()


def test_a_database_that_cannot_be_opened_is_not(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'missing' / 'newsletter.db'}")
    database = Database(engine, sessionmaker(engine))
    try:
        assert not database.is_reachable()
    finally:
        database.dispose()


def test_every_sqlite_connection_zeroes_what_it_deletes(db: Database) -> None:
    # Some SQLite builds (Debian's) have secure_delete on by default, others not: the
    # engine sets it on every connection, so an erased person's bytes never stay in the
    # file's free space, whichever build runs it.
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    with db.engine.connect() as first, db.engine.connect() as second:
        for connection in (first, second):
            assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
