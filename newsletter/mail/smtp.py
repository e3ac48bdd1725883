"""The one SMTP client of the product: an asyncio connection with pipelined transactions.

Confirmation mails and the bulk sender both go through `SmtpConnection`. A transaction's
outcome is data (`TransactionResult`, with the server's reply for MAIL, every RCPT and
DATA), not an exception: a 4xx or 5xx for one recipient is normal business for a sender.
Exceptions are for the connection itself: it cannot be opened (`SmtpConnectError`), or it
broke, timed out or the server said 421 (`SmtpConnectionLost`); the caller then opens a
new one and resends what was not acknowledged.

After any transaction that did not end in a 250 for DATA the connection is reset (RSET),
so the server never sees a MAIL inside an unfinished one; if even RSET fails the
connection is closed and the caller must replace it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import re
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from newsletter.core.errors import SmtpConnectError, SmtpConnectionLost

Security = Literal["none", "starttls", "tls"]


class BodyGate(Protocol):
    """What the end of a message must wait for (groupcommit.Ticket): the sender's record
    of its previous message. Until the final dot is sent the server has accepted
    nothing, so holding that dot back is what bounds a crash's duplicates; the body
    itself goes out at once."""

    @property
    def is_open(self) -> bool: ...

    @property
    def error(self) -> BaseException | None: ...

    def on_open(self, callback: Callable[[BaseException | None], None]) -> None: ...

    async def wait(self) -> None:
        """Until it opens; raises the error it opened with."""


# Wait for the socket to take what was written only past this much buffered: small
# writes go out on their own, and waiting for each would cost a loop turn.
_DRAIN_ABOVE = 256 * 1024

_LINE_END = re.compile(rb"\r\n|\r|\n")
# How a message in wire form ends: the line with the single dot.
_DATA_END = b".\r\n"
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


@dataclass(frozen=True)
class TransactionResult:
    """What the server said to one transaction."""

    mail: Reply
    recipients: dict[str, Reply]
    data: Reply | None  # None when DATA was never reached (MAIL or every RCPT refused)

    @property
    def delivered(self) -> list[str]:
        """Recipients the server took responsibility for."""
        if self.data is None or self.data.code != 250:
            return []
        return [address for address, reply in self.recipients.items() if reply.ok]

    def reply_for(self, address: str) -> Reply:
        """The reply that decides `address`'s fate: its own refusal, else MAIL's or DATA's."""
        if not self.mail.ok:
            return self.mail
        own = self.recipients.get(address)
        if own is not None and not own.ok:
            return own
        return self.data if self.data is not None else self.mail


@dataclass(frozen=True)
class SmtpOptions:
    """Where and how to connect; built from the [smtp] settings (see `from_settings`)."""

    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    helo_name: str | None = None
    tls_context: ssl.SSLContext | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_UNSAFE_IN_ADDRESS = re.compile(r"[\r\n\0<>]")


def _check_address(address: str) -> str:
    # An address reaching the wire with a line break would start a new command.
    if _UNSAFE_IN_ADDRESS.search(address) or len(address) > 320:
        raise ValueError(f"refusing unsafe address {address!r}")
    return address


# A reply line longer than this is no SMTP (RFC 5321 allows 512 octets).
_MAX_LINE = 64 * 1024


class _Replies(asyncio.Protocol):
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
                transport.write(memoryview(body)[: -len(_DATA_END)])
                self._end = _DATA_END
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


class SmtpConnection:
    """One open SMTP session; use `open()` to connect, `send()` per transaction."""

    def __init__(self, options: SmtpOptions, protocol: _Replies) -> None:
        self.options = options
        self._protocol = protocol
        assert protocol.transport is not None
        self._transport: asyncio.Transport = protocol.transport
        self._loop = asyncio.get_running_loop()
        self.extensions: dict[str, str] = {}
        self.closed = False
        # One timer per session instead of one per wait: each wait moves the deadline,
        # and the timer, when it fires early, moves itself to the current deadline.
        self._deadline = 0.0
        self._waiting: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._timed_out = False

    # -- opening --------------------------------------------------------------------

    @classmethod
    async def open(cls, options: SmtpOptions) -> SmtpConnection:
        """Connect, greet, upgrade to TLS and log in as the options say."""
        where = f"{options.host}:{options.port}"
        context: ssl.SSLContext | None = None
        if options.security != "none":
            context = options.tls_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            _transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    _Replies,
                    options.host,
                    options.port,
                    ssl=context if options.security == "tls" else None,
                    server_hostname=options.host if options.security == "tls" else None,
                ),
                options.timeout,
            )
        except TimeoutError:
            raise SmtpConnectError(
                f"cannot connect to SMTP server {where}: timed out after {options.timeout:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
            raise SmtpConnectError(f"cannot connect to SMTP server {where}: {reason}") from exc
        # Wait for the socket only past this much unsent; below it writes just queue.
        protocol.transport.set_write_buffer_limits(high=_DRAIN_ABOVE)  # type: ignore[union-attr]
        connection = cls(options, protocol)
        try:
            await connection._handshake(context)
        except SmtpConnectionLost as exc:
            connection._abort()
            raise SmtpConnectError(f"SMTP server {where} hung up during set-up: {exc}") from exc
        except SmtpConnectError:
            await connection.close()
            raise
        return connection

    async def _handshake(self, context: ssl.SSLContext | None) -> None:
        options = self.options
        where = f"{options.host}:{options.port}"
        greeting = await self._read_reply("the greeting")
        if greeting.code != 220:
            raise SmtpConnectError(f"SMTP server {where} refused us: {greeting}")
        await self._ehlo()
        if options.security == "starttls":
            assert context is not None
            if "starttls" not in self.extensions:
                raise SmtpConnectError(f"SMTP server {where} does not offer STARTTLS")
            reply = await self.command("STARTTLS")
            if reply.code != 220:
                raise SmtpConnectError(f"SMTP server {where} refused STARTTLS: {reply}")
            try:
                transport = await self._loop.start_tls(
                    self._transport, self._protocol, context, server_hostname=options.host
                )
            except (OSError, ssl.SSLError) as exc:
                raise SmtpConnectError(f"TLS with {where} failed: {exc}") from exc
            if transport is None:
                raise SmtpConnectError(f"TLS with {where} failed: the connection closed")
            assert isinstance(transport, asyncio.Transport)
            self._transport = self._protocol.transport = transport
            await self._ehlo()
        if options.username:
            await self._login()

    async def _ehlo(self) -> None:
        name = self.options.helo_name or socket.getfqdn() or "localhost"
        reply, lines = await self._command_lines(f"EHLO {name}")
        if reply.code != 250:
            reply = await self.command(f"HELO {name}")
            if reply.code != 250:
                raise SmtpConnectError(f"SMTP server refused EHLO and HELO: {reply}")
            self.extensions = {}
            return
        extensions = {}
        for line in lines[1:]:
            keyword, _, params = line.partition(" ")
            extensions[keyword.lower()] = params
        self.extensions = extensions

    async def _login(self) -> None:
        options = self.options
        if options.security == "none" and not _is_loopback(options.host):
            raise SmtpConnectError(
                f"refusing to send the SMTP password unencrypted to {options.host}; "
                'set [smtp] security = "starttls" or "tls"'
            )
        if options.password is None:
            raise SmtpConnectError("[smtp] username is set but NEWSLETTER_SMTP_PASSWORD is not")
        username, password = options.username or "", options.password
        methods = self.extensions.get("auth", "").upper().split()
        if "PLAIN" in methods or not methods:
            secret = f"\0{username}\0{password}".encode()
            reply = await self.command(f"AUTH PLAIN {base64.b64encode(secret).decode()}")
        elif "LOGIN" in methods:
            reply = await self.command("AUTH LOGIN")
            if reply.code == 334:
                reply = await self.command(base64.b64encode(username.encode()).decode())
            if reply.code == 334:
                reply = await self.command(base64.b64encode(password.encode()).decode())
        else:
            raise SmtpConnectError(f"SMTP server offers no AUTH method we know: {methods}")
        if reply.code != 235:
            raise SmtpConnectError(f"SMTP login as {options.username!r} failed: {reply}")

    # -- waiting --------------------------------------------------------------------

    async def _until(self, waiter: asyncio.Future[None]) -> bool:
        """Await `waiter` under the command timeout; False when the time ran out."""
        loop = self._loop
        self._deadline = loop.time() + self.options.timeout
        self._waiting, self._timed_out = waiter, False
        if self._timer is None:
            self._timer_at = self._deadline
            self._timer = loop.call_at(self._deadline, self._on_timer)
        try:
            await waiter
        finally:
            self._waiting = None
        return not self._timed_out

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiting
        if waiter is None:
            return  # nothing waits: the next wait arms it again
        if self._deadline <= self._timer_at:
            self._timed_out = True
            if not waiter.done():
                waiter.set_result(None)
            return
        self._timer_at = self._deadline
        self._timer = self._loop.call_at(self._deadline, self._on_timer)

    def _lost_waiting(self, waiting_for: str) -> SmtpConnectionLost:
        self._abort()
        return SmtpConnectionLost(
            f"timed out after {self.options.timeout:g} s waiting for {waiting_for}"
        )

    # -- talking --------------------------------------------------------------------

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.extensions

    async def _read_reply(self, waiting_for: str) -> Reply:
        [(reply, _lines)] = await self._read_replies(1, waiting_for)
        return reply

    async def _read_replies(self, count: int, waiting_for: str) -> list[tuple[Reply, list[str]]]:
        """The next `count` replies, under one timeout (a pipelined group's replies)."""
        protocol = self._protocol
        if len(protocol.replies) < count and protocol.broken is None and not protocol.closing:
            waiter = self._loop.create_future()
            protocol.wait_for(waiter, count)
            if not await self._until(waiter):
                raise self._lost_waiting(waiting_for)
        queued = protocol.replies
        replies = [queued.popleft() for _ in range(min(count, len(queued)))]
        for reply, _lines in replies:
            if reply.code == 421:
                self._abort()
                raise SmtpConnectionLost(f"server is closing the connection: {reply}")
        if len(replies) < count:
            what, detail = protocol.broken or ("connection closed waiting for", "")
            self._abort()
            raise SmtpConnectionLost(f"{what} {waiting_for}{detail}")
        return replies

    async def _write(self, data: bytes | memoryview) -> None:
        if self.closed:
            raise SmtpConnectionLost("the connection is closed")
        self._transport.write(data)
        await self._drain()

    async def _drain(self) -> None:
        """Wait, under the timeout, while the transport holds too much unsent."""
        if self._protocol.paused:
            waiter = self._loop.create_future()
            self._protocol.wait_writable(waiter)
            if not await self._until(waiter):
                self._abort()
                raise SmtpConnectionLost(
                    f"timed out after {self.options.timeout:g} s sending to the server"
                )

    async def _command_lines(self, line: str) -> tuple[Reply, list[str]]:
        await self._write(line.encode("utf-8") + b"\r\n")
        [(reply, lines)] = await self._read_replies(1, line.split(" ", 1)[0])
        return reply, lines

    async def command(self, line: str) -> Reply:
        """Send one command line and return its reply."""
        reply, _lines = await self._command_lines(line)
        return reply

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        payload: bytes,
        *,
        gate: BodyGate | None = None,
    ) -> TransactionResult:
        """One transaction: MAIL, RCPT per recipient, DATA with `payload` (see wire_form).

        With PIPELINING the envelope goes out in one write and its replies are read
        together; the body is only sent after the server said 354 (and MAIL and a RCPT
        were accepted), by the receiving side the moment those replies are in.

        The final dot of the body also waits for `gate`, if given. When the gate opens
        with an error the session is dropped before that dot (the server accepts
        nothing) and that error is raised.
        """
        if self.closed:
            raise SmtpConnectionLost("the connection is closed")
        if not payload.endswith(b"\r\n" + _DATA_END):
            raise ValueError("the payload is not in wire form (see wire_form)")
        mail_line = f"MAIL FROM:<{_check_address(sender)}>"
        if "8bitmime" in self.extensions:
            mail_line += " BODY=8BITMIME"
        if "smtputf8" in self.extensions and not (sender + "".join(recipients)).isascii():
            mail_line += " SMTPUTF8"
        envelope = [mail_line] + [f"RCPT TO:<{_check_address(r)}>" for r in recipients]
        if self.pipelining:
            self._protocol.send_body_on_go_ahead(payload, len(recipients) + 2, gate)
            await self._write("".join(f"{line}\r\n" for line in [*envelope, "DATA"]).encode())
            group = await self._read_replies(len(recipients) + 2, "the replies to MAIL, RCPT, DATA")
            mail = group[0][0]
            replies = {r: reply for r, (reply, _) in zip(recipients, group[1:-1], strict=True)}
            data_go = group[-1][0]
            if not mail.ok or not any(reply.ok for reply in replies.values()):
                # DATA was sent regardless; if the server nonetheless said 354, end the
                # empty message so it is discarded, then reset.
                if data_go.code == 354:
                    await self._write(b".\r\n")
                    await self._read_reply("the end of an empty message")
                await self._reset_after_failure()
                return TransactionResult(mail, replies, None)
        else:
            mail = await self.command(envelope[0])
            if not mail.ok:
                await self._reset_after_failure()
                return TransactionResult(mail, {}, None)
            replies = {}
            for recipient, line in zip(recipients, envelope[1:], strict=True):
                replies[recipient] = await self.command(line)
            if not any(reply.ok for reply in replies.values()):
                await self._reset_after_failure()
                return TransactionResult(mail, replies, None)
            data_go = await self.command("DATA")
        if data_go.code != 354:
            await self._reset_after_failure()
            return TransactionResult(mail, replies, data_go)
        if self.pipelining:
            await self._body_written()
        elif gate is None or gate.is_open:
            await self._write(payload)
        else:
            await self._write(memoryview(payload)[: -len(_DATA_END)])
            await self._through(gate)
            await self._write(_DATA_END)
        data = await self._read_reply("the reply to the message")
        if data.code != 250:
            await self._reset_after_failure()
        return TransactionResult(mail, replies, data)

    async def _body_written(self) -> None:
        """Until the receiving side wrote the whole message (see send_body_on_go_ahead)."""
        protocol = self._protocol
        if protocol.body_pending:
            waiter = self._loop.create_future()
            protocol.wait_body(waiter)
            if not await self._until(waiter):
                raise self._lost_waiting("the outcome of the previous message")
        if protocol.body_error is not None:
            self._abort()
            raise protocol.body_error
        if not protocol.body_sent:
            what, detail = protocol.broken or ("connection closed waiting for", "")
            self._abort()
            raise SmtpConnectionLost(f"{what} the end of the message{detail}")
        await self._drain()

    async def _through(self, gate: BodyGate) -> None:
        """Wait for `gate` to open; drop the session and raise if it opened with an error."""
        try:
            await gate.wait()
        except Exception:
            self._abort()
            raise

    async def _reset_after_failure(self) -> None:
        reply = await self.command("RSET")
        if reply.code != 250:
            await self.close()
            raise SmtpConnectionLost(f"RSET after a failed transaction was refused: {reply}")

    # -- closing --------------------------------------------------------------------

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _abort(self) -> None:
        """Drop the session at once: it broke, timed out or the server is closing it."""
        self.closed = True
        self._stop_timer()
        self._transport.abort()

    async def close(self) -> None:
        """Say QUIT (politely, briefly) and close; never raises."""
        if self.closed:
            return
        self.closed = True
        self._stop_timer()
        protocol = self._protocol
        if protocol.broken is None:
            self._transport.write(b"QUIT\r\n")
            waiter = self._loop.create_future()
            protocol.wait_for(waiter, len(protocol.replies) + 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, min(self.options.timeout, 5))
        self._transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.lost), 5)

    async def __aenter__(self) -> SmtpConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
