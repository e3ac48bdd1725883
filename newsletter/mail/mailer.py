"""Single mails (confirmations, notices to one person) through the product's SMTP client.

The bulk sender builds its messages its own, faster way; both hand their bytes to
`newsletter.mail.smtp.SmtpConnection`, so there is one SMTP layer with one set of rules.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr

from newsletter.core.config import Settings
from newsletter.core.errors import MailRefused
from newsletter.core.text import one_line
from newsletter.core.tls import client_context
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.smtp import SmtpConnection, SmtpOptions, TransactionResult
from newsletter.mail.smtp_protocol import wire_form


@dataclass(frozen=True)
class OutgoingMail:
    """One mail to one person; `kind` names it in logs and the consent record."""

    to: str
    subject: str
    text: str
    html: str | None = None
    kind: str = "notice"
    extra_headers: dict[str, str] = field(default_factory=dict)
    # A Message-ID and envelope sender of its own (a probe's signed ones); None: a fresh
    # Message-ID, and the return path.
    message_id: str | None = None
    envelope_from: str | None = None


def smtp_options(settings: Settings) -> SmtpOptions:
    """The SMTP client's options from the [smtp] and [tls] settings and the password in
    the environment."""
    smtp = settings.smtp
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpOptions(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=password,
        timeout=smtp.timeout_seconds,
        helo_name=smtp.helo_name or default_helo_name(socket.getfqdn(), sender_address(settings)),
        tls_context=client_context(settings) if smtp.security != "none" else None,
        tls_server_name=smtp.tls_server_name,
    )


def default_helo_name(fqdn: str, sender: str) -> str:
    """What EHLO says when [smtp] helo_name is empty: this machine's fully qualified name
    when it has a dot, else the domain of the sender's address. A relay may refuse a name
    without a dot (Postfix: reject_non_fqdn_helo_hostname), and `localhost` says nothing."""
    name = fqdn.strip().rstrip(".").lower()
    if "." in name and not name.startswith("localhost"):
        return name
    return sender.rpartition("@")[2].lower()


def sender_address(settings: Settings) -> str:
    """The bare address of [sender] from."""
    return parseaddr(settings.sender.from_)[1]


def return_path(settings: Settings) -> str:
    """The envelope sender of every mail the product sends, so that every bounce reaches
    the return mailbox: [delivery] return_path, else the [sender] address."""
    return parseaddr(settings.delivery.return_path or settings.sender.from_)[1]


class _HeaderClasses(HeaderRegistry):
    """email's header registry, making each header's class once instead of per header.

    The standard one builds a new class (`type(...)`) every time a header is set or
    read: a third of the time a confirmation mail took to build.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


_POLICY = SMTP_POLICY.clone(header_factory=_HeaderClasses())
_ASCII_SUBJECT_POLICY = _POLICY.clone(max_line_length=998)


def build_message(mail: OutgoingMail, *, settings: Settings, now: datetime) -> bytes:
    """The mail as RFC 5322 bytes: text (and HTML) in UTF-8, headers that cannot be split.

    The recipient goes in `To` as a bare address: names typed into a form are never put
    in a mail to an address that has not confirmed it (spammers use sign-up forms to
    carry their text to strangers).
    """
    subject = one_line(mail.subject)
    # Python folds a long plain-ASCII subject oddly ("Subject:" then the text on the next
    # line, which some clients show with a leading space); a line of up to 998 octets is
    # allowed, so such a subject stays on one line. Non-ASCII ones fold as encoded words.
    policy = _POLICY if not subject.isascii() else _ASCII_SUBJECT_POLICY
    message = EmailMessage(policy=policy)
    message["From"] = settings.sender.from_
    message["To"] = one_line(mail.to)
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = mail.message_id or make_msgid(
        domain=sender_address(settings).rpartition("@")[2]
    )
    if settings.sender.reply_to:
        message["Reply-To"] = settings.sender.reply_to
    message["Auto-Submitted"] = "auto-generated"
    for name, value in mail.extra_headers.items():
        message[one_line(name)] = one_line(value)
    message.set_content(mail.text, charset="utf-8")
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html", charset="utf-8")
    return message.as_bytes()


Send = Callable[[OutgoingMail], Awaitable[None]]


class SmtpMailer:
    """Sends one mail per SMTP session; for confirmations and notices, not for bulk.

    Each goes out as a newsletter does: from the return path, DKIM-signed when [dkim] is
    set, so that its bounce comes back where bounces are read.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._options = smtp_options(settings)
        self._signer = DkimSigner.from_settings(settings)

    @property
    def options(self) -> SmtpOptions:
        return self._options

    def payload(self, mail: OutgoingMail) -> bytes:
        """`mail` as the bytes of DATA: built, in wire form, DKIM-signed when [dkim] is set."""
        payload = wire_form(build_message(mail, settings=self._settings, now=self._clock()))
        if self._signer is not None:
            payload = self._signer.sign_wire(payload)
        return payload

    async def send_on(self, connection: SmtpConnection, mail: OutgoingMail, payload: bytes) -> None:
        """Send `mail` (its `payload`) as one transaction on an open connection; raise
        MailRefused when the server refused it."""
        result: TransactionResult = await connection.send(
            mail.envelope_from or return_path(self._settings), [mail.to], payload
        )
        if mail.to not in result.delivered:
            reply = result.reply_for(mail.to)
            raise MailRefused(
                f"the SMTP server refused the mail to {mail.to}: {reply}",
                permanent=reply.permanent,
            )

    async def send(self, mail: OutgoingMail) -> None:
        """Deliver `mail` or raise DeliveryError saying why (refused, unreachable, ...)."""
        payload = self.payload(mail)
        async with await SmtpConnection.open(self._options) as connection:
            await self.send_on(connection, mail, payload)

    def send_now(self, mail: OutgoingMail) -> None:
        """`send` for synchronous callers (the CLI)."""
        asyncio.run(self.send(mail))
