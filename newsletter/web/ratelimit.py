"""Sliding-window limits on sign-ups and staff logins, held in this process's memory.

Each client key keeps the times of its recent counted requests; a request is allowed when
fewer than `limit` of them fall inside the last `window`. Refused requests are not
counted, so a client that waits for `Retry-After` always gets through. `hit` checks and
counts at once; `check` and `count` apart, for endpoints that count only the requests
they accepted (a mistyped address or a form refused by the CSRF check costs nothing);
`release` gives back a request counted beforehand (a login that turned out right).
`LoginLimits` combines three of them so that only failed logins count (see its docstring).

The state lives in memory, per process: several uvicorn workers or hosts each count on
their own (the effective limit is `limit` times the number of processes), and a restart
forgets everything. That is enough against one noisy client; it is not a quota.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.core.clock import Clock

# Beyond this many clients the least recently seen are forgotten, so a flood from many
# addresses costs bounded memory (those forgotten simply start counting afresh).
DEFAULT_MAX_CLIENTS = 100_000


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go on, and if not, how many seconds until one may."""

    allowed: bool
    retry_after: int = 0


class SlidingWindowLimiter:
    """At most `limit` requests per client key in any `window`; thread-safe."""

    def __init__(
        self,
        *,
        limit: int,
        window: timedelta,
        clock: Clock,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        if limit < 1 or window <= timedelta(0) or max_clients < 1:
            raise ValueError("limit, window and max_clients must be positive")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_clients = max_clients
        # Ordered by each client's latest counted request, oldest first.
        self._hits: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> Verdict:
        """Count one request from `key` if it is allowed; say when to retry if not."""
        return self._judge(key, count=True)

    def check(self, key: str) -> Verdict:
        """Whether a request from `key` would be allowed now, without counting it."""
        return self._judge(key, count=False)

    def count(self, key: str) -> None:
        """Count one accepted request from `key` (checked with `check` before)."""
        now = self._clock()
        with self._lock:
            self._times_of(key, now - self.window).append(now)
            self._hits.move_to_end(key)
            while len(self._hits) > self._max_clients:
                self._hits.popitem(last=False)

    def release(self, key: str) -> None:
        """Take back the latest counted request of `key` (it should not have counted)."""
        with self._lock:
            times = self._hits.get(key)
            if times:
                times.pop()

    def _judge(self, key: str, *, count: bool) -> Verdict:
        now = self._clock()
        horizon = now - self.window
        with self._lock:
            self._forget_idle_clients(horizon)
            times = self._times_of(key, horizon)
            if len(times) >= self.limit:
                wait = (times[0] + self.window - now).total_seconds()
                return Verdict(allowed=False, retry_after=max(1, math.ceil(wait)))
            if count:
                times.append(now)
                self._hits.move_to_end(key)
                while len(self._hits) > self._max_clients:
                    self._hits.popitem(last=False)
            return Verdict(allowed=True)

    def _times_of(self, key: str, horizon: datetime) -> deque[datetime]:
        """The key's counted times inside the window (the caller holds the lock)."""
        times = self._hits.get(key)
        if times is None:
            times = self._hits[key] = deque()
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def clients(self) -> int:
        """How many clients are being counted (for tests and diagnostics)."""
        with self._lock:
            return len(self._hits)

    def _forget_idle_clients(self, horizon: datetime) -> None:
        # The oldest entries come first: stop at the first client still inside the window.
        while self._hits:
            key, times = next(iter(self._hits.items()))
            if times and times[-1] > horizon:
                break
            del self._hits[key]


# While a name is under attack, each client gets this many failed tries at that name.
TRIES_PER_CLIENT_UNDER_ATTACK = 3


@dataclass(frozen=True)
class LoginLimits:
    """Failed staff logins, counted per client, per name, and per name and client.

    Only failures count. A client with `limit` failures in the window (for any names) is
    refused, even with the right password, until the window lets one go. A name with
    `limit` failures from anywhere is *under attack*: it is not locked, because then any
    stranger could keep its owner out; instead every client gets only
    TRIES_PER_CLIENT_UNDER_ATTACK failed tries at that name. So the right password from a
    client that is not itself limited always gets in, and guessing one name from many
    addresses still slows down.
    """

    by_client: SlidingWindowLimiter
    by_name: SlidingWindowLimiter
    by_name_and_client: SlidingWindowLimiter

    @classmethod
    def build(cls, *, limit: int, window: timedelta, clock: Clock) -> LoginLimits:
        def limiter(count: int) -> SlidingWindowLimiter:
            return SlidingWindowLimiter(limit=count, window=window, clock=clock)

        return cls(limiter(limit), limiter(limit), limiter(TRIES_PER_CLIENT_UNDER_ATTACK))

    def begin(self, name: str, client: str) -> Verdict:
        """Whether this login attempt may be checked; it counts as a failure until
        `succeeded` says otherwise (so parallel guesses cannot slip past the limit)."""
        verdict = self.by_client.hit(client)
        if not verdict.allowed:
            return verdict
        if not self.by_name.check(name).allowed:
            pair = self.by_name_and_client.check(_pair(name, client))
            if not pair.allowed:
                self.by_client.release(client)
                return pair
        return verdict

    def succeeded(self, client: str) -> None:
        """The password was right: the attempt does not count after all."""
        self.by_client.release(client)

    def failed(self, name: str, client: str) -> None:
        """The password was wrong (or the name unknown)."""
        self.by_name.count(name)
        self.by_name_and_client.count(_pair(name, client))


def _pair(name: str, client: str) -> str:
    return f"{name}\n{client}"
