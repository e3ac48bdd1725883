"""Pacing a send: a steady rate per second, an hourly cap, and growing pauses for retries.

Both limits hold across restarts: a restarted send starts with an empty bucket (no burst)
and counts the messages the database says went out in the last hour.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

MAX_RETRY_PAUSE = timedelta(hours=2)


class Pacer:
    """Await `wait()` before each message; it returns when the limits allow one more."""

    def __init__(
        self,
        *,
        per_second: float,
        per_hour: int,
        sent_in_last_hour: Iterable[float] = (),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`sent_in_last_hour`: monotonic times of earlier sends (from the database)."""
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._per_hour = per_hour
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_slot = monotonic()
        self._hour: deque[float] = deque(sorted(sent_in_last_hour))
        self._lock = asyncio.Lock()

    @property
    def limited(self) -> bool:
        """False when there is nothing to wait for (no rate, no hourly cap)."""
        return bool(self._interval or self._per_hour)

    async def wait(self) -> None:
        if not self.limited:
            return
        async with self._lock:
            now = self._monotonic()
            if self._per_hour:
                while self._hour and self._hour[0] <= now - 3600:
                    self._hour.popleft()
                if len(self._hour) >= self._per_hour:
                    await self._sleep(self._hour[0] + 3600 - now)
                    now = self._monotonic()
                    while self._hour and self._hour[0] <= now - 3600:
                        self._hour.popleft()
            if self._interval:
                if self._next_slot > now:
                    await self._sleep(self._next_slot - now)
                    now = self._monotonic()
                self._next_slot = max(self._next_slot, now) + self._interval
            if self._per_hour:
                self._hour.append(now)


def next_attempt_at(
    *,
    attempts: int,
    first_attempt_at: datetime,
    now: datetime,
    first_pause: timedelta,
    give_up_after: timedelta,
) -> datetime | None:
    """When to try again after `attempts` temporary failures; None once past the deadline.

    The pause doubles with each attempt (5, 10, 20 minutes ...), at most two hours, and
    the last try is placed on the deadline rather than beyond it.
    """
    deadline = first_attempt_at + give_up_after
    if now >= deadline:
        return None
    doublings = min(max(attempts - 1, 0), 16)
    pause = min(first_pause * (1 << doublings), MAX_RETRY_PAUSE)
    return min(now + pause, deadline)
