"""The database handle: whether it answers, for the health check."""

from __future__ import annotations

from pathlib import Path

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
