"""A real SMTP server (aiosmtpd) for tests, with faults a test can switch on.

Faults are keyed by recipient address: a fixed reply at RCPT, a sequence of replies at
DATA (e.g. 451 once, then accept), a dropped connection, or a message held at DATA until
the test lets it go. Every accepted message is kept with its envelope and raw bytes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.waiting import PATIENCE_SECONDS, POLL_SECONDS


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Hold:
    """A message the server holds at DATA, unanswered, until the test releases it.

    Never released, it stands for a server that stops answering: the sender's timeout is
    then the only thing that ends the wait, however slow the machine.
    """

    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class Faults:
    rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply, e.g. "550 no"
    data: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    drop_in_data: set[str] = field(default_factory=set)  # hang up when DATA names them
    hold_in_data: dict[str, Hold] = field(default_factory=dict)  # the next DATA naming them
    mail_reply: deque[str] = field(default_factory=deque)  # replies to the next MAILs


class _Handler:
    def __init__(self, server: TestSmtpServer) -> None:
        self.server = server

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        with self.server.lock:
            self.server.helo_names.append(hostname)
        if self.server.pipelining:
            responses.insert(-1, "250-PIPELINING")
        if self.server.dsn:
            responses.insert(-1, "250-DSN")
        return responses

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self.server.lock:
            self.server.commands.append(f"MAIL {address}")
            self.server.mail_options.append(list(mail_options))
            if envelope.mail_from is not None:
                self.server.mail_inside_mail += 1
            if self.server.faults.mail_reply:
                return self.server.faults.mail_reply.popleft()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.server.lock:
            self.server.commands.append(f"RCPT {address}")
            reply = self.server.faults.rcpt.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.server.lock:
            self.server.commands.append("RSET")
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        faults = self.server.faults
        for address in envelope.rcpt_tos:
            if address in faults.drop_in_data:
                faults.drop_in_data.discard(address)
                assert server.transport is not None
                server.transport.abort()
                return "451 dropped"
            hold = faults.hold_in_data.pop(address, None)
            if hold is not None:
                hold.reached.set()
                # Polled, not awaited in a thread: a sender that hangs up cancels this.
                while not hold.released.is_set():
                    await asyncio.sleep(POLL_SECONDS)
            with self.server.lock:
                queued = faults.data.get(address)
                reply = queued.popleft() if queued else None
            if reply:
                return reply
        with self.server.lock:
            self.server.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    bytes(envelope.content),  # type: ignore[arg-type]
                )
            )
        return "250 OK: queued"


# What a server that offers DSN (RFC 3461) accepts besides aiosmtpd's own parameters.
DSN_PARAMETERS = ("RET", "ENVID", "NOTIFY", "ORCPT")


class _DsnSmtp(SMTP):
    """aiosmtpd taking the DSN parameters of MAIL and RCPT (it refuses unknown ones)."""

    def _getparams(self, params: Any) -> Any:
        found = super()._getparams(params)
        for name in DSN_PARAMETERS:
            if found is not None:
                found.pop(name, None)
        return found


class _Controller(Controller):
    def __init__(self, *args: Any, dsn: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dsn = dsn

    def factory(self) -> SMTP:
        if self._dsn:
            return _DsnSmtp(self.handler, **self.SMTP_kwargs)
        return super().factory()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TestSmtpServer:
    """aiosmtpd on 127.0.0.1, in its own thread; `received` holds what it accepted."""

    __test__ = False  # not a test class, despite the name

    def __init__(
        self,
        *,
        pipelining: bool = True,
        dsn: bool = False,
        credentials: tuple[str, str] | None = None,
        **smtp_options: Any,
    ) -> None:
        self.pipelining = pipelining
        self.dsn = dsn
        self.mail_options: list[list[str]] = []  # the parameters of each MAIL, in order
        self.helo_names: list[str] = []  # what each EHLO said the client was
        self.faults = Faults()
        self.received: list[Received] = []
        self.commands: list[str] = []
        self.mail_inside_mail = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self._running = False
        options = dict(smtp_options)
        if credentials is not None:

            def authenticate(
                server: SMTP,
                session: Session,
                envelope: Envelope,
                mechanism: str,
                auth_data: Any,
            ) -> AuthResult:
                ok = (
                    isinstance(auth_data, LoginPassword)
                    and (
                        auth_data.login.decode(),
                        auth_data.password.decode(),
                    )
                    == credentials
                )
                return AuthResult(success=ok, handled=False)

            options.update(authenticator=authenticate, auth_require_tls=False)
        self._controller = _Controller(
            _Handler(self),
            dsn=dsn,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=PATIENCE_SECONDS,
            **options,
        )

    def start(self) -> TestSmtpServer:
        self._controller.start()
        self._running = True
        return self

    def hold(self, address: str) -> Hold:
        """Hold the next message to `address` at DATA until the returned hold is released."""
        hold = self.faults.hold_in_data[address] = Hold()
        return hold

    def stop(self) -> None:
        if self._running:
            self._running = False
            for hold in list(self.faults.hold_in_data.values()):
                hold.release()
            self._controller.stop()

    def messages(self) -> list[EmailMessage]:
        return [item.message() for item in self.received]

    def delivered_to(self) -> list[str]:
        return [address for item in self.received for address in item.recipients]
