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
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from newsletter.errors import SmtpConnectError, SmtpConnectionLost

Security = Literal["none", "starttls", "tls"]

# Wait for the socket to take what was written only past this much buffered: small
# writes go out on their own, and awaiting drain() for each costs a loop turn.
_DRAIN_ABOVE = 256 * 1024

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def wire_form(message: bytes) -> bytes:
    """A message as DATA sends it: CRLF line ends, leading dots doubled, ending '.' line.

    Done once per distinct body; the bulk sender keeps the result instead of redoing it.
    """
    data = _LEADING_DOT.sub(b"..", _LINE_END.sub(b"\r\n", message))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


@dataclass(frozen=True)
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


def _check_address(address: str) -> str:
    # An address reaching the wire with a line break would start a new command.
    if any(ch in address for ch in "\r\n\0<>") or len(address) > 320:
        raise ValueError(f"refusing unsafe address {address!r}")
    return address


class SmtpConnection:
    """One open SMTP session; use `open()` to connect, `send()` per transaction."""

    def __init__(
        self,
        options: SmtpOptions,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.options = options
        self._reader = reader
        self._writer = writer
        self.extensions: dict[str, str] = {}
        self.closed = False

    # -- opening --------------------------------------------------------------------

    @classmethod
    async def open(cls, options: SmtpOptions) -> SmtpConnection:
        """Connect, greet, upgrade to TLS and log in as the options say."""
        where = f"{options.host}:{options.port}"
        context = options.tls_context or ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
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
        connection = cls(options, reader, writer)
        try:
            await connection._handshake(context)
        except SmtpConnectionLost as exc:
            connection._abort()
            raise SmtpConnectError(f"SMTP server {where} hung up during set-up: {exc}") from exc
        except SmtpConnectError:
            await connection.close()
            raise
        return connection

    async def _handshake(self, context: ssl.SSLContext) -> None:
        options = self.options
        where = f"{options.host}:{options.port}"
        greeting = await self._read_reply("the greeting")
        if greeting.code != 220:
            raise SmtpConnectError(f"SMTP server {where} refused us: {greeting}")
        await self._ehlo()
        if options.security == "starttls":
            if "starttls" not in self.extensions:
                raise SmtpConnectError(f"SMTP server {where} does not offer STARTTLS")
            reply = await self.command("STARTTLS")
            if reply.code != 220:
                raise SmtpConnectError(f"SMTP server {where} refused STARTTLS: {reply}")
            try:
                await self._writer.start_tls(context, server_hostname=options.host)
            except (OSError, ssl.SSLError) as exc:
                raise SmtpConnectError(f"TLS with {where} failed: {exc}") from exc
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

    # -- talking --------------------------------------------------------------------

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.extensions

    async def _read_reply(self, waiting_for: str) -> Reply:
        reply, _lines = await self._read_reply_lines(waiting_for)
        return reply

    async def _read_reply_lines(self, waiting_for: str) -> tuple[Reply, list[str]]:
        [(reply, lines)] = await self._read_replies(1, waiting_for)
        return reply, lines

    async def _read_replies(self, count: int, waiting_for: str) -> list[tuple[Reply, list[str]]]:
        """The next `count` replies, under one timeout (a pipelined group's replies)."""
        try:
            # asyncio.timeout, not wait_for: no task per read on the hot path.
            async with asyncio.timeout(self.options.timeout):
                return [await self._receive_reply(waiting_for) for _ in range(count)]
        except TimeoutError:
            self._abort()
            raise SmtpConnectionLost(
                f"timed out after {self.options.timeout:g} s waiting for {waiting_for}"
            ) from None

    async def _receive_reply(self, waiting_for: str) -> tuple[Reply, list[str]]:
        lines: list[str] = []
        while True:
            try:
                raw = await self._reader.readline()
            except (OSError, ValueError) as exc:  # ValueError: a line over the limit
                self._abort()
                raise SmtpConnectionLost(f"connection failed waiting for {waiting_for}") from exc
            if not raw.endswith(b"\n"):
                self._abort()
                raise SmtpConnectionLost(f"connection closed waiting for {waiting_for}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                self._abort()
                raise SmtpConnectionLost(f"not an SMTP reply to {waiting_for}: {line[:80]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                reply = Reply(int(line[:3]), " ".join(part for part in lines if part))
                if reply.code == 421:
                    self._abort()
                    raise SmtpConnectionLost(f"server is closing the connection: {reply}")
                return reply, lines

    async def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
                async with asyncio.timeout(self.options.timeout):
                    await self._writer.drain()
        except TimeoutError:
            self._abort()
            raise SmtpConnectionLost(
                f"timed out after {self.options.timeout:g} s sending to the server"
            ) from None
        except OSError as exc:
            self._abort()
            raise SmtpConnectionLost(f"connection failed while sending: {exc}") from exc

    async def _command_lines(self, line: str) -> tuple[Reply, list[str]]:
        await self._write(line.encode("utf-8") + b"\r\n")
        return await self._read_reply_lines(line.split(" ", 1)[0])

    async def command(self, line: str) -> Reply:
        """Send one command line and return its reply."""
        reply, _lines = await self._command_lines(line)
        return reply

    async def send(
        self, sender: str, recipients: Sequence[str], payload: bytes
    ) -> TransactionResult:
        """One transaction: MAIL, RCPT per recipient, DATA with `payload` (see wire_form).

        With PIPELINING the envelope goes out in one write and its replies are read
        together; the body is only sent after the server said 354.
        """
        if self.closed:
            raise SmtpConnectionLost("the connection is closed")
        mail_line = f"MAIL FROM:<{_check_address(sender)}>"
        if "8bitmime" in self.extensions:
            mail_line += " BODY=8BITMIME"
        if "smtputf8" in self.extensions and not (sender + "".join(recipients)).isascii():
            mail_line += " SMTPUTF8"
        envelope = [mail_line] + [f"RCPT TO:<{_check_address(r)}>" for r in recipients]
        if self.pipelining:
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
        await self._write(payload)
        data = await self._read_reply("the reply to the message")
        if data.code != 250:
            await self._reset_after_failure()
        return TransactionResult(mail, replies, data)

    async def _reset_after_failure(self) -> None:
        reply = await self.command("RSET")
        if reply.code != 250:
            await self.close()
            raise SmtpConnectionLost(f"RSET after a failed transaction was refused: {reply}")

    # -- closing --------------------------------------------------------------------

    def _abort(self) -> None:
        self.closed = True
        self._writer.close()

    async def close(self) -> None:
        """Say QUIT (politely, briefly) and close; never raises."""
        if self.closed:
            return
        with contextlib.suppress(TimeoutError, OSError, ValueError):
            self._writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self._reader.readline(), min(self.options.timeout, 5))
        self._abort()
        with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
            await asyncio.wait_for(self._writer.wait_closed(), 5)

    async def __aenter__(self) -> SmtpConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
