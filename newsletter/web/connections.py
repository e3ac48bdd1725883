"""Connections to `newsletter serve` that cost little: deadlines to send a request, a cap.

uvicorn closes a connection idle between requests (`timeout_keep_alive`), but gives a
client all the time in the world to send one: a byte of the headers now and then, or a
body that never completes, holds a connection and a file descriptor for good. Left alone,
about a thousand such connections from one client exhausted the descriptors of the
process, after which it could accept nobody (not even /healthz) and logged every refused
accept. So each connection here has

    connection made, or the previous response sent
        ──headers within HEADER_SECONDS──> headers in
        ──body within BODY_SECONDS──────> request in: the app works, no deadline

and is closed when it misses one (the app sees a disconnect). Beyond `max_connections`
open at once (half the process's descriptors at most), a new connection closes the one
that has waited longest for its request: slow senders go first, a quick request gets in.
Should a burst of connections still find no descriptor free, asyncio stops accepting for
a second and logs it with a traceback, once for every waiting connection; here it is
counted, and said in one line a minute at most. A reverse proxy in front should set its
own limits too (README.md, "Production").
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from dataclasses import dataclass, field
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

# uvicorn's own issue #157 proposed these two (request start ~10 s, request complete ~60 s).
HEADER_SECONDS = 10.0
BODY_SECONDS = 60.0  # the largest body, a 2 MB CSV import (security.py), at ~35 KB/s
MAX_CONNECTIONS = 1000
# Descriptors the process keeps for itself besides connections: the database, SMTP
# connections for the mails, log files, the event loop.
RESERVED_DESCRIPTORS = 64
# Connections waiting to be accepted (asyncio's default; uvicorn's is 2048). asyncio also
# accepts this many at once before any of them is seen, so it is what a burst can add
# above the cap.
BACKLOG = 100
# What asyncio says when accept() finds no descriptor free (selector_events.py).
_OUT_OF_DESCRIPTORS = "socket.accept() out of system resource"
# How often at most a line says that connections were closed (with how many since).
LOG_EVERY_SECONDS = 60.0

# The server's own log, where uvicorn writes its errors and warnings.
logger = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send its request, and how many may be open at once."""

    header_seconds: float = HEADER_SECONDS
    body_seconds: float = BODY_SECONDS
    max_connections: int = field(default_factory=lambda: connection_cap(MAX_CONNECTIONS))


def connection_cap(wanted: int) -> int:
    """`wanted`, or fewer: half of the descriptors the process may open besides its own,
    so that a burst of new connections finds room before the cap closes the oldest."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - RESERVED_DESCRIPTORS) // 2))


@dataclass
class ConnectionGuard:
    """What the connections of one server share: the limits, who waits, what was closed.

    `protocol` is the server's protocol class (uvicorn's `http=`); `server` makes the server.
    """

    limits: ConnectionLimits
    # Connections not closed (uvicorn's own set keeps a closed one until its close is done).
    open: set[GuardedProtocol] = field(default_factory=set)
    # Connections waiting for their request, longest waiting first (a dict keeps order).
    waiting: dict[GuardedProtocol, None] = field(default_factory=dict)
    closed_slow: int = 0
    closed_over_cap: int = 0
    not_accepted: int = 0
    logged_at: float | None = None
    _pending: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.protocol: type[GuardedProtocol] = type(
            "GuardedServerProtocol", (GuardedProtocol,), {"guard": self}
        )

    def server(self, config: uvicorn.Config) -> uvicorn.Server:
        """A uvicorn server for `config` (made with `http=self.protocol`)."""
        if config.http is not self.protocol:
            raise ValueError("the server's config must use this guard's protocol")
        return ConnectionGuardedServer(config, self)

    def closed(self, loop: asyncio.AbstractEventLoop, *, over_cap: bool) -> None:
        if over_cap:
            self.closed_over_cap += 1
        else:
            self.closed_slow += 1
        self._log(loop)

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's exception handler: a failed accept counted, the rest as usual."""
        if context.get("message") != _OUT_OF_DESCRIPTORS:
            loop.default_exception_handler(context)
            return
        self.not_accepted += 1
        self._log(loop)

    def _log(self, loop: asyncio.AbstractEventLoop) -> None:
        """Say what happened now, or else once a minute has passed since the last line."""
        now = loop.time()
        if self.logged_at is not None and now - self.logged_at < LOG_EVERY_SECONDS:
            if self._pending is None:
                wait = self.logged_at + LOG_EVERY_SECONDS - now
                self._pending = loop.call_later(wait, self._log, loop)
            return
        self._pending = None
        logger.warning(
            "closed %d connection(s) that sent their request too slowly and %d beyond "
            "the cap of %d open connections; %d time(s) no descriptor was free to accept "
            "one (since the last such line)",
            self.closed_slow,
            self.closed_over_cap,
            self.limits.max_connections,
            self.not_accepted,
        )
        self.closed_slow = self.closed_over_cap = self.not_accepted = 0
        self.logged_at = now


class ConnectionGuardedServer(uvicorn.Server):
    """uvicorn's server, with the guard also counting the accepts that failed."""

    def __init__(self, config: uvicorn.Config, guard: ConnectionGuard) -> None:
        super().__init__(config)
        self.guard = guard

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.guard.loop_exception)
        await super().startup(sockets)


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and the cap above."""

    guard: ConnectionGuard  # set on the subclass each guard makes (`ConnectionGuard.protocol`)
    # What the client owes: h11.IDLE (its headers), h11.SEND_BODY (its body), or None.
    _phase: object = None
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.open.add(self)
        self._follow()
        if len(self.guard.open) > self.guard.limits.max_connections:
            # Over the cap: the one that has waited longest for its request makes room
            # (this one, when every other is being answered).
            oldest = next(iter(self.guard.waiting), self)
            oldest._close(over_cap=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.guard.open.discard(self)
        self._stop_waiting()

    def _follow(self) -> None:
        """Start the deadline of the part of the request the client owes, if it changed."""
        if self.transport.is_closing():
            self._stop_waiting()
            return
        state = self.conn.their_state
        phase = state if state in (h11.IDLE, h11.SEND_BODY) else None
        if phase is self._phase:
            return
        self._stop_waiting()
        if phase is None:
            return
        self._phase = phase
        self.guard.waiting[self] = None
        seconds = self.guard.limits.header_seconds
        if phase is h11.SEND_BODY:
            seconds = self.guard.limits.body_seconds
        self._deadline = self.loop.call_later(seconds, self._missed_deadline)

    def _stop_waiting(self) -> None:
        self._phase = None
        self.guard.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _missed_deadline(self) -> None:
        self._deadline = None
        if self.flow.read_paused:
            # The app has not read what came so far: the wait is ours, not the client's.
            self._deadline = self.loop.call_later(
                self.guard.limits.body_seconds, self._missed_deadline
            )
            return
        self._close(over_cap=False)

    def _close(self, *, over_cap: bool) -> None:
        self._stop_waiting()
        self.guard.open.discard(self)
        if not self.transport.is_closing():
            self.guard.closed(self.loop, over_cap=over_cap)
            self.transport.close()
