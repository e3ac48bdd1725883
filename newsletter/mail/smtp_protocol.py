"""The receiving side of an SMTP session: replies parsed as bytes arrive, and the body.

`SmtpProtocol` is the asyncio protocol under an `SmtpConnection` (mail/smtp.py): it
parses the server's replies and, for a pipelined message, writes the body the moment the
envelope's replies allow it. `wire_form` is a message as DATA sends it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class BodyGate(Protocol):
    """What the end of a message must wait for (a Ticket of delivery/groupcommit.py): the
    sender's record of its previous message. Until the final dot is sent the server has
    accepted nothing, so holding that dot back is what bounds a crash's duplicates; the
    body itself goes out at once."""

    @property
    def is_open(self) -> bool: ...

    @property
    def error(self) -> BaseException | None: ...

    def on_open(self, callback: Callable[[BaseException | None], None]) -> None: ...

    async def wait(self) -> None:
        """Until it opens; raises the error it opened with."""


_LINE_END = re.compile(rb"\r\n|\r|\n")
# How a message in wire form ends: the line with the single dot.
DATA_END = b".\r\n"
_LEADING_DOT = re.compile(rb"(?m)^\.")


def wire_form(message: bytes) -> bytes:
    """A message as DATA sends it: CRLF line ends, leading dots doubled, ending '.' line.

    Done once per distinct body; the bulk sender keeps the result instead of redoing it.
    """
    data = _LEADING_DOT.sub(b"..", _LINE_END.sub(b"\r\n", message))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: the code and its text (continuation lines joined by spaces)."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


# A reply line longer than this is no SMTP (RFC 5321 allows 512 octets).
_MAX_LINE = 64 * 1024


class SmtpProtocol(asyncio.Protocol):
    """The receiving side of a session: parses replies as bytes arrive.

    Replies are parsed from whatever the socket delivered, all at once, and the one
    waiting reader is woken only when what it waits for is there: no coroutine hop per
    line, as `StreamReader.readline` makes. A pipelined message's body goes out from
    here too, as soon as the envelope's replies allow it (see `send_body_on_go_ahead`).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.replies: deque[tuple[Reply, list[str]]] = deque()
        # Why no more replies will come, as (what happened, detail): set once.
        self.broken: tuple[str, str] | None = None
        self.closing = False  # a 421 arrived: the server is closing the session
        self._buffer = b""
        self._lines: list[str] = []
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self._writable: asyncio.Future[None] | None = None
        self.paused = False
        # A message's body to write as soon as its envelope's replies say go ahead, and
        # its final dot to write once its gate opens (see send_body_on_go_ahead).
        self._body: bytes | None = None
        self._end: bytes | None = None
        self._body_after = 0
        self._gate: BodyGate | None = None
        self._gate_waiting = False
        self._body_waiter: asyncio.Future[None] | None = None
        self.body_sent = False
        self.body_error: BaseException | None = None

    # -- what the reader calls ------------------------------------------------------

    def wait_for(self, waiter: asyncio.Future[None], count: int) -> None:
        """Resolve `waiter` once `count` replies are queued, or none can come."""
        self._waiter, self._wanted = waiter, count
        self._wake()

    def send_body_on_go_ahead(self, payload: bytes, replies: int, gate: BodyGate | None) -> None:
        """Write `payload` the moment the `replies` replies to a pipelined envelope (MAIL,
        RCPT ..., DATA) are in and all say go ahead: from data_received itself, a loop
        turn before the waiting sender could, which keeps the server busy.

        Its final dot, the only thing that lets the server accept the message, waits for
        `gate`: the body streams to the server while the sender's last outcome is being
        committed. A gate that opens with an error leaves the message unfinished.
        """
        self._body, self._end = payload, None
        self._body_after, self._gate = replies, gate
        self.body_sent, self.body_error = False, None
        self._send_body()

    @property
    def body_pending(self) -> bool:
        """Part of the message is not written yet (waiting for replies or the gate)."""
        return self._body is not None or self._end is not None

    def wait_body(self, waiter: asyncio.Future[None]) -> None:
        """Resolve `waiter` once nothing of the message waits to be written."""
        self._body_waiter = waiter
        if not self.body_pending:
            self._body_done()

    def _send_body(self) -> None:
        transport = self.transport
        if self._body is not None:
            if len(self.replies) < self._body_after:
                return
            group = [reply for reply, _lines in itertools.islice(self.replies, self._body_after)]
            mail, recipients, data = group[0], group[1:-1], group[-1]
            go_ahead = mail.ok and any(reply.ok for reply in recipients) and data.code == 354
            if not go_ahead or self.broken is not None or self.closing or transport is None:
                self._drop_body()
                return
            body, self._body = self._body, None
            gate = self._gate
            if gate is None or gate.is_open:
                self._end = body  # all of it in one write, below
            else:
                # All but the final dot now: the server reads the body meanwhile.
                transport.write(memoryview(body)[: -len(DATA_END)])
                self._end = DATA_END
        if self._end is None:
            return
        gate = self._gate
        if gate is not None and not gate.is_open:
            if not self._gate_waiting:
                self._gate_waiting = True
                gate.on_open(self._gate_opened)
            return
        if gate is not None and gate.error is not None:
            self.body_error = gate.error
            self._drop_body()
            return
        if self.broken is not None or transport is None:
            self._drop_body()
            return
        end, self._end, self._gate = self._end, None, None
        transport.write(end)
        self.body_sent = True
        self._body_done()

    def _drop_body(self) -> None:
        self._body = self._end = self._gate = None
        self._body_done()

    def _body_done(self) -> None:
        waiter, self._body_waiter = self._body_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _gate_opened(self, _error: BaseException | None) -> None:
        self._gate_waiting = False
        self._send_body()

    def wait_writable(self, waiter: asyncio.Future[None]) -> None:
        self._writable = waiter
        if not self.paused or self.broken is not None:
            self._writable = None
            waiter.set_result(None)

    # -- what the transport calls ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        start = 0
        while self.broken is None:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            self._line(buffer[start:end].decode("utf-8", "replace").rstrip("\r\n"))
            start = end + 1
        self._buffer = buffer[start:]
        if len(self._buffer) > _MAX_LINE and self.broken is None:
            self.broken = ("connection failed waiting for", "")
        self._send_body()
        self._wake()

    def _line(self, line: str) -> None:
        code = line[:3]
        if len(code) < 3 or not code.isdigit():
            self.broken = ("not an SMTP reply to", f": {line[:80]!r}")
            return
        text = line[4:]
        if line[3:4] == "-":
            self._lines.append(text)
            return
        lines = self._lines
        if lines:  # the last line of a multi-line reply
            lines.append(text)
            self._lines = []
            text = " ".join(part for part in lines if part)
        else:
            lines = [text]
        self.replies.append((Reply(int(code), text), lines))
        if code == "421":
            self.closing = True

    def eof_received(self) -> bool:
        return False  # close; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.broken is None:
            if exc is None:
                self.broken = ("connection closed waiting for", "")
            else:
                self.broken = ("connection failed waiting for", "")
        self._wake()
        self._drop_body()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._writable is not None:
            if not self._writable.done():
                self._writable.set_result(None)
            self._writable = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None:
            return
        if len(self.replies) >= self._wanted or self.broken is not None or self.closing:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
