"""Opening the database: engines with the right SQLite pragmas, and migrations to head."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.core.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web app read while a send job writes; foreign keys are off by default
    # in SQLite; the busy timeout turns short lock waits into waits instead of errors;
    # secure_delete overwrites what a delete frees with zeros, so an erased person's
    # bytes do not stay in the file's free space (see Database.empty_write_ahead_log).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout and secure_delete."""
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise StorageError(f"cannot open database {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def newest_revision() -> str:
    """The newest migration's revision: the highest number among the files in
    migrations/versions/, each named after its revision ("0012_....py" is "0012").

    Read off the file names, not by loading every migration through Alembic: each
    command checks the schema at start, and Alembic's import and script scan cost more
    than a small send's first message may wait (tests/core/test_db.py checks that both
    name the same revision)."""
    numbers = [
        path.name.partition("_")[0] for path in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py")
    ]
    return max(numbers)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no schema yet)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == newest_revision()


def upgrade_schema(engine: Engine, *, revision: str = "head") -> None:
    """Bring the schema to the newest migration (or to `revision`, for tests of an
    upgrade); a no-op when it is at the newest already."""
    try:
        if revision == "head" and schema_is_current(engine):
            return
        from alembic import command  # only when there is something to migrate

        config = _alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot migrate database: {exc.__class__.__name__}: {exc}") from exc


@dataclass(frozen=True)
class Database:
    """An engine and its session factory; what every command gets instead of a global."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessions.begin() as session:
            yield session

    def is_reachable(self) -> bool:
        """Whether the database answers a trivial query now (for a health check)."""
        try:
            with self.session() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def empty_write_ahead_log(self) -> bool:
        """On SQLite, copy the write-ahead log into the database file and truncate it.

        After an erasure this leaves the person's old bytes in neither file: the log held
        the rows as written, and secure_delete zeroed them in the pages now copied over
        them. It waits up to the busy timeout for readers to finish; False when one still
        read (the log then keeps its copy until a later checkpoint). On PostgreSQL there
        is nothing the application can do (its WAL and VACUUM are the server's): True.
        """
        if self.engine.dialect.name != "sqlite":
            return True
        try:
            with self.engine.connect() as connection:
                busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").scalar()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot checkpoint the database: {exc}") from exc
        return busy == 0

    def dispose(self) -> None:
        self.engine.dispose()

    def one_writer(self) -> AbstractContextManager[object]:
        """Hold around a write transaction that threads of one process run side by side.

        SQLite lets one writer in at a time and makes the others sleep and retry (by
        1, 2, 5 ... up to 100 ms at a time, for the busy timeout): under a crowd of
        sign-ups most of a request's time went there. With this lock the threads of
        this process take turns at once instead. Other processes still meet the busy
        timeout. PostgreSQL locks rows, not the database: nothing to hold there. The
        lock is re-entrant: a transaction begun inside another one's work waits for
        SQLite as it always did, never for itself.
        """
        if self.engine.dialect.name != "sqlite":
            return nullcontext()
        with _WRITERS_LOCK:
            lock = _WRITERS.get(self.engine)
            if lock is None:
                lock = _WRITERS[self.engine] = threading.RLock()
        return lock


_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def open_database(url: str, *, upgrade: bool = True, **engine_kwargs: Any) -> Database:
    """Open the database at `url`, creating or upgrading its schema unless told not to."""
    engine = create_db_engine(url, **engine_kwargs)
    try:
        if upgrade:
            upgrade_schema(engine)
        else:
            with engine.connect():
                pass
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(f"cannot open database: {exc.__class__.__name__}: {exc}") from exc
    except StorageError:
        engine.dispose()
        raise
    return Database(engine, sessionmaker(engine, expire_on_commit=False))
