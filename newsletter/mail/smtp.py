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
import contextlib
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from newsletter.core.errors import SmtpConnectError, SmtpConnectionLost
from newsletter.mail.smtp_auth import log_in
from newsletter.mail.smtp_protocol import DATA_END, BodyGate, Reply, SmtpProtocol

Security = Literal["none", "starttls", "tls"]


# Wait for the socket to take what was written only past this much buffered: small
# writes go out on their own, and waiting for each would cost a loop turn.
_DRAIN_ABOVE = 256 * 1024


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
    """Where and how to connect; mail/mailer.py's `smtp_options` builds it from [smtp]."""

    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    helo_name: str | None = None
    tls_context: ssl.SSLContext | None = None
    # The name the certificate must carry; None: `host`.
    tls_server_name: str | None = None

    @property
    def certificate_name(self) -> str:
        return self.tls_server_name or self.host


_UNSAFE_IN_ADDRESS = re.compile(r"[\r\n\0<>]")


def _check_address(address: str) -> str:
    # An address reaching the wire with a line break would start a new command.
    if _UNSAFE_IN_ADDRESS.search(address) or len(address) > 320:
        raise ValueError(f"refusing unsafe address {address!r}")
    return address


class _Envelope(NamedTuple):
    """The MAIL line of a transaction, and the RCPT line of each recipient."""

    mail: str
    rcpt: dict[str, str]


class SmtpConnection:
    """One open SMTP session; use `open()` to connect, `send()` per transaction."""

    def __init__(self, options: SmtpOptions, protocol: SmtpProtocol) -> None:
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
                    SmtpProtocol,
                    options.host,
                    options.port,
                    ssl=context if options.security == "tls" else None,
                    server_hostname=options.certificate_name if options.security == "tls" else None,
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
                    self._transport,
                    self._protocol,
                    context,
                    server_hostname=options.certificate_name,
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
        methods = self.extensions.get("auth", "").upper().split()
        await log_in(self.command, self.options, methods)

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
        """One transaction: MAIL, RCPT per recipient, DATA with `payload` in wire form
        (smtp_protocol.wire_form).

        With PIPELINING the envelope goes out in one write and its replies are read
        together; the body is only sent after the server said 354 (and MAIL and a RCPT
        were accepted), by the receiving side the moment those replies are in.

        The final dot of the body also waits for `gate`, if given. When the gate opens
        with an error the session is dropped before that dot (the server accepts
        nothing) and that error is raised.
        """
        if self.closed:
            raise SmtpConnectionLost("the connection is closed")
        if not payload.endswith(b"\r\n" + DATA_END):
            raise ValueError("the payload is not in wire form (see wire_form)")
        mail_line = f"MAIL FROM:<{_check_address(sender)}>"
        if "8bitmime" in self.extensions:
            mail_line += " BODY=8BITMIME"
        if "dsn" in self.extensions:
            # A report of a failure returns the headers only: enough to tie it to its
            # subscriber (our signed Message-ID), without a copy of the whole mail.
            mail_line += " RET=HDRS"
        if "smtputf8" in self.extensions and not (sender + "".join(recipients)).isascii():
            mail_line += " SMTPUTF8"
        envelope = _Envelope(mail_line, {r: f"RCPT TO:<{_check_address(r)}>" for r in recipients})
        if self.pipelining:
            return await self._send_pipelined(envelope, payload, gate)
        return await self._send_step_by_step(envelope, payload, gate)

    async def _send_pipelined(
        self, envelope: _Envelope, payload: bytes, gate: BodyGate | None
    ) -> TransactionResult:
        """The envelope and DATA in one write; the receiving side sends the body."""
        lines = [envelope.mail, *envelope.rcpt.values(), "DATA"]
        self._protocol.send_body_on_go_ahead(payload, len(lines), gate)
        await self._write("".join(f"{line}\r\n" for line in lines).encode())
        group = await self._read_replies(len(lines), "the replies to MAIL, RCPT, DATA")
        mail = group[0][0]
        replies = {r: reply for r, (reply, _) in zip(envelope.rcpt, group[1:-1], strict=True)}
        data_go = group[-1][0]
        if not mail.ok or not any(reply.ok for reply in replies.values()):
            # DATA was sent regardless; if the server nonetheless said 354, end the
            # empty message so it is discarded, then reset.
            if data_go.code == 354:
                await self._write(b".\r\n")
                await self._read_reply("the end of an empty message")
            await self._reset_after_failure()
            return TransactionResult(mail, replies, None)
        if data_go.code != 354:
            await self._reset_after_failure()
            return TransactionResult(mail, replies, data_go)
        await self._body_written()
        return await self._message_reply(mail, replies)

    async def _send_step_by_step(
        self, envelope: _Envelope, payload: bytes, gate: BodyGate | None
    ) -> TransactionResult:
        """Each command after the reply to the one before (a server without PIPELINING)."""
        mail = await self.command(envelope.mail)
        if not mail.ok:
            await self._reset_after_failure()
            return TransactionResult(mail, {}, None)
        replies = {}
        for recipient, line in envelope.rcpt.items():
            replies[recipient] = await self.command(line)
        if not any(reply.ok for reply in replies.values()):
            await self._reset_after_failure()
            return TransactionResult(mail, replies, None)
        data_go = await self.command("DATA")
        if data_go.code != 354:
            await self._reset_after_failure()
            return TransactionResult(mail, replies, data_go)
        if gate is None or gate.is_open:
            await self._write(payload)
        else:
            await self._write(memoryview(payload)[: -len(DATA_END)])
            await self._through(gate)
            await self._write(DATA_END)
        return await self._message_reply(mail, replies)

    async def _message_reply(self, mail: Reply, replies: dict[str, Reply]) -> TransactionResult:
        """The server's verdict on the message just sent; reset unless it took it."""
        data = await self._read_reply("the reply to the message")
        if data.code != 250:
            await self._reset_after_failure()
        return TransactionResult(mail, replies, data)

    async def _body_written(self) -> None:
        """Until the protocol wrote the whole message (see its send_body_on_go_ahead)."""
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
