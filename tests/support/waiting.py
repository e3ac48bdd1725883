"""Waiting for the event itself, never for a time: one helper and one generous cap."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# The longest any test waits for anything. A loaded machine is slow, not stuck: this is
# far beyond what it needs, and only there so that a hang ends in a clear failure.
PATIENCE_SECONDS = 300.0
# A timeout a test makes fire (a relay that never answers). It governs every wait of the
# session, also those that must end in time: local replies that take a few milliseconds,
# and have been seen to take over half a second on a loaded machine.
TIMEOUT_UNDER_TEST_SECONDS = 5.0
# How often a condition is asked again: soon after the event, the wait is over.
POLL_SECONDS = 0.05


def _gave_up(what: str, cap: float) -> AssertionError:
    return AssertionError(f"gave up after {cap:g} s waiting for {what}")


def wait_until(
    condition: Callable[[], T | None],
    *,
    what: str,
    cap: float = PATIENCE_SECONDS,
) -> T:
    """Ask `condition` until it answers something true and return that answer; fail
    naming `what` once `cap` seconds have passed."""
    deadline = time.monotonic() + cap
    while not (answer := condition()):
        if time.monotonic() > deadline:
            raise _gave_up(what, cap)
        time.sleep(POLL_SECONDS)
    return answer


async def wait_until_async(
    condition: Callable[[], T | None],
    *,
    what: str,
    cap: float = PATIENCE_SECONDS,
) -> T:
    """`wait_until` inside an event loop: the loop runs on while it waits."""
    deadline = time.monotonic() + cap
    while not (answer := condition()):
        if time.monotonic() > deadline:
            raise _gave_up(what, cap)
        await asyncio.sleep(POLL_SECONDS)
    return answer


def exit_code(process: subprocess.Popen[Any], *, what: str, cap: float = PATIENCE_SECONDS) -> int:
    """`process`'s exit code once it has ended; fail naming `what` if it outlives `cap`."""
    try:
        return process.wait(timeout=cap)
    except subprocess.TimeoutExpired:
        raise _gave_up(f"{what} to end", cap) from None


def joined(thread: threading.Thread, *, what: str, cap: float = PATIENCE_SECONDS) -> None:
    """Return once `thread` has ended; fail naming `what` if it outlives `cap`."""
    thread.join(cap)
    if thread.is_alive():
        raise _gave_up(f"{what} to end", cap)
