"""The database handle: whether it answers, for the health check; SQLite's settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from newsletter.core.db import Database, create_db_engine, schema_is_current, upgrade_schema
from tests.support.waiting import joined


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


def test_the_newest_revision_read_off_the_file_names_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from newsletter.core.db import _alembic_config, newest_revision

    scripts = ScriptDirectory.from_config(_alembic_config())
    assert newest_revision() == scripts.get_current_head()
    for script in scripts.walk_revisions():  # the convention newest_revision relies on
        assert Path(script.path).name.startswith(f"{script.revision}_")


def test_a_database_one_migration_behind_is_brought_up_to_date(tmp_path: Path) -> None:
    from newsletter.core.db import current_revision, newest_revision

    engine = create_db_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert current_revision(engine) is None
        previous = f"{int(newest_revision()) - 1:04d}"
        upgrade_schema(engine, revision=previous)
        assert current_revision(engine) == previous
        assert not schema_is_current(engine)
        upgrade_schema(engine)
        assert current_revision(engine) == newest_revision()
        assert schema_is_current(engine)
    finally:
        engine.dispose()


def test_the_sqlite_writers_of_one_process_take_turns(db: Database) -> None:
    if db.engine.dialect.name != "sqlite":
        with db.one_writer():  # PostgreSQL locks rows: nothing is held
            pass
        return
    tried: list[bool] = []

    def try_to_write() -> None:
        lock = db.one_writer()
        taken = lock.acquire(blocking=False)  # type: ignore[attr-defined]
        tried.append(taken)
        if taken:
            lock.release()  # type: ignore[attr-defined]

    with db.one_writer(), db.one_writer():  # the same thread may nest
        other = threading.Thread(target=try_to_write)
        other.start()
        joined(other, what="the other writer's try")
    after = threading.Thread(target=try_to_write)
    after.start()
    joined(after, what="the later writer's try")
    assert tried == [False, True]
