"""A mail sink: an SMTP server on loopback that accepts every message and files it as .eml.

`newsletter demo` sends its confirmation mails and its edition into one, so the whole
product runs without a real mail server and nothing leaves the machine. Every message is
accepted (no relay rules, no authentication), written to `folder` as a numbered `.eml`
file and kept in memory, where `wait_for` lets a caller wait for one to arrive.

The server runs on its own event loop in a thread; `start` returns once it listens and
`stop` (or leaving the `with` block) closes it and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP

from newsletter.core.errors import DeliveryError

# What the sink says of itself in its greeting. Given, because aiosmtpd would otherwise
# look up the machine's fully qualified name, which can mean a DNS query.
SINK_HOSTNAME = "mailsink.localhost"
# The most the sink waits for its server thread to start or stop (it returns as soon as
# it has): generous, so that a busy machine is no reason to fail.
START_TIMEOUT_SECONDS = 120.0
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SunkMail:
    """One message the sink accepted: its envelope, its bytes and the file it went to."""

    number: int
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    path: Path

    def message(self) -> EmailMessage:
        """The message parsed with the modern e-mail policy."""
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def text(self) -> str:
        """The plain-text part, or "" when there is none."""
        body = self.message().get_body(("plain",))
        return str(body.get_content()) if body is not None else ""


Label = Callable[[EmailMessage], str]


def first_recipient_label(message: EmailMessage) -> str:
    """The default file label: the local part of the `To` address."""
    return str(message.get("To", "message")).rpartition("<")[2].partition("@")[0]


class MailSink:
    """An SMTP server on `host` that accepts every message and files it in `folder`.

    Files are named `0001-LABEL.eml`, numbered in the order the messages arrived;
    `label` makes LABEL from the parsed message (default: the recipient's local part).
    Port 0 (the default) picks a free port; `port` says which once started.
    """

    def __init__(
        self,
        folder: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        label: Label = first_recipient_label,
    ) -> None:
        self.folder = folder
        self.host = host
        self._requested_port = port
        self._label = label
        self._port: int | None = None
        self._mails: list[SunkMail] = []
        self._arrived = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # -- running -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the sink listens on (once started)."""
        if self._port is None:
            raise RuntimeError("the mail sink is not running")
        return self._port

    def start(self) -> MailSink:
        """Listen on `host`; return once connections are accepted, or raise DeliveryError."""
        if self._thread is not None:
            raise RuntimeError("the mail sink is running already")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="mail-sink", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS) or self._failure is not None:
            reason = self._failure or "it did not start in time"
            self.stop()
            raise DeliveryError(
                f"the mail sink cannot listen on {self.host}:{self._requested_port}: {reason}"
            ) from self._failure
        return self

    def stop(self) -> None:
        """Close the server and its open sessions, and join its thread; safe to repeat."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(closing.set)
        thread.join(START_TIMEOUT_SECONDS)
        self._port = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(), which waits for it
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._closing = loop, asyncio.Event()
        server = await loop.create_server(
            lambda: SMTP(
                _Handler(self._accept),
                hostname=SINK_HOSTNAME,
                enable_SMTPUTF8=True,
                loop=loop,
            ),
            host=self.host,
            port=self._requested_port,
        )
        async with server:
            self._port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._closing.wait()
        # asyncio.run cancels the sessions still open when this returns.

    # -- what arrived --------------------------------------------------------------

    def mails(self) -> list[SunkMail]:
        """Every message accepted so far, in the order they arrived."""
        with self._arrived:
            return list(self._mails)

    def wait_for(self, match: Callable[[SunkMail], bool], *, timeout: float) -> SunkMail | None:
        """The first message for which `match` is true, waiting up to `timeout` seconds.

        None when none arrived in time.
        """
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for mail in self._mails:
                    if match(mail):
                        return mail
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)

    def _accept(self, sender: str, recipients: list[str], data: bytes) -> None:
        with self._arrived:
            number = len(self._mails) + 1
            parsed = message_from_bytes(data, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            label = _UNSAFE_IN_FILE_NAME.sub("-", self._label(parsed)).strip("-.")[:60]
            path = self.folder / f"{number:04d}-{label or 'message'}.eml"
            # Written aside, then renamed: whoever watches the folder never sees half a file.
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)
            self._mails.append(SunkMail(number, sender, tuple(recipients), data, path))
            self._arrived.notify_all()


class _Handler:
    """aiosmtpd's hooks: accept every envelope and hand the message to the sink."""

    def __init__(self, accept: Callable[[str, list[str], bytes], None]) -> None:
        self._accept = accept

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", errors="surrogateescape")
        self._accept(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(data))
        return "250 OK: kept in the mail sink"
