"""Stopping on SIGTERM or SIGINT: the first signal asks nicely, a second one ends at once."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: Callable[[signal.Signals], None]) -> None:
    """Call `stop` at the first SIGTERM or SIGINT, from the main thread.

    After that first signal both signals take their default action again, so a second
    one ends the process at once: what it held (a lock, claimed outbox rows) comes back
    as a dead process's would. `stop` must only ask: set an event, shut a scheduler
    down without waiting. An asyncio loop blocked in select wakes for
    `loop.call_soon_threadsafe`, not for a plain `Event.set`.
    """

    def first(signum: int, _frame: FrameType | None) -> None:
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        stop(signal.Signals(signum))

    for number in STOP_SIGNALS:
        signal.signal(number, first)
