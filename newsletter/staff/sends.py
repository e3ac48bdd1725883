"""Sends started from the staff pages: each runs in a thread of the web process.

The send holds the job lock, as `newsletter send` does, so the scheduler or a person at
a terminal cannot work on it at the same time; the lock is taken before the thread
starts, so staff learn at once when someone else is busy. Progress is read from the
outbox like `newsletter edition status` does, so the page shows the same numbers
whoever sends. If the web process stops halfway, the outbox keeps its place: the next
`newsletter run` or `newsletter send N` resumes.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import NewsletterError
from newsletter.delivery.send import send_edition
from newsletter.jobs.locking import JOB_LOCK, LockTaken, try_lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendState:
    """What this process knows of a send it started: still running, or how it ended."""

    running: bool
    error: str | None = None


class BackgroundSends:
    """Starts sends in threads and remembers how each one ended."""

    def __init__(self, settings: Settings, database: Database, *, clock: Clock) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._states: dict[int, SendState] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, number: int) -> None:
        """Start sending edition `number`; NewsletterError when the job lock is taken."""
        with self._lock:
            if self._states.get(number, SendState(False)).running:
                return
            held = try_lock(self._database, JOB_LOCK, clock=self._clock)
            if isinstance(held, LockTaken):
                raise NewsletterError(f"{held.describe()}; try again when it is done")
            self._states[number] = SendState(running=True)

            def work() -> None:
                error = None
                try:
                    send_edition(self._settings, self._database, number, clock=self._clock)
                except NewsletterError as exc:
                    error = str(exc)
                except Exception as exc:  # a thread's crash must reach the page, not vanish
                    logger.exception("the send of edition %s failed", number)
                    error = f"unexpected error: {exc}"
                finally:
                    held.release()
                with self._lock:
                    self._states[number] = SendState(running=False, error=error)

            thread = threading.Thread(target=work, name=f"send-{number}", daemon=True)
            self._threads[number] = thread
            thread.start()

    def state(self, number: int) -> SendState | None:
        """How the send of `number` started here is doing; None if none was started."""
        with self._lock:
            return self._states.get(number)

    def wait(self, number: int, timeout: float | None = None) -> None:
        """Block until the send of `number` ends (for tests and a clean shutdown)."""
        thread = self._threads.get(number)
        if thread is not None:
            thread.join(timeout)
