"""The suite's databases: which ones it runs on, and watching what a thread sends them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from newsletter.core.db import Database

POSTGRES_URL_ENV = "NEWSLETTER_TEST_POSTGRES_URL"


@contextmanager
def statement_sent(
    database: Database, *, by: threading.Thread, starting: str = ""
) -> Iterator[threading.Event]:
    """An event set once thread `by` sends `database` a statement that starts with
    `starting` (any statement, when empty): to know that a thread reached the statement
    that must wait for a lock, instead of giving it time to get there."""
    sent = threading.Event()
    prefix = starting.upper()

    def note(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if threading.current_thread() is by and statement.lstrip().upper().startswith(prefix):
            sent.set()

    event.listen(database.engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(database.engine, "before_cursor_execute", note)
