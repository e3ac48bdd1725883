"""Building the newsletter's MIME messages fast: a skeleton once, a join per recipient.

`MessageTemplate.build` assembles a whole message once per composed mail (edition and
theme set) with markers where recipients differ, encodes and dot-stuffs it, and splits
it at the markers. `render(recipient)` then only joins bytes: no MIME objects, no
encoding passes and no rendering per recipient. This is where a send of 100,000 gets its
speed, so keep it a join.

Bodies go out as 8bit UTF-8 (every server we talk to offers 8BITMIME; the sender checks).
Every line stays under the 998-octet limit: `build` refuses a template whose lines could
grow past it once the longest allowed values are filled in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import partial

from newsletter.core.errors import CompositionError
from newsletter.core.text import bare, one_line
from newsletter.editions.personalized import ComposedMail, RecipientValues, html_escaped

MAX_LINE_OCTETS = 998
# The longest per-recipient values `render` accepts, in octets once encoded; build()
# checks that a line holding them still fits.
MAX_VALUE_OCTETS = {
    "to": 500,
    "message_id": 200,
    "list_unsubscribe_mailto": 300,
    "unsubscribe_url": 300,
    "preferences_url": 300,
    "email": 400,
    "name": 400,
}


@dataclass(frozen=True)
class MessageRecipient:
    """What differs per recipient; every value is plain, unescaped text."""

    email: str
    name: str | None
    unsubscribe_url: str
    preferences_url: str
    message_id: str  # "<...@domain>"
    list_unsubscribe_mailto: str  # "mailto:...", the second List-Unsubscribe target


@dataclass(frozen=True)
class MessageHeaders:
    """The headers that are the same for every recipient of one send."""

    from_: str
    subject: str
    date: datetime
    reply_to: str | None
    list_id: str  # "Name <id.domain>"
    test: bool = False  # a staff test copy: marked in the subject and a header


def _encoded_subject(subject: str) -> str:
    """Subject as a header value: ASCII as is, else RFC 2047 encoded-words (folded)."""
    cleaned = one_line(subject)
    if cleaned.isascii():
        return cleaned
    return Header(cleaned, "utf-8", header_name="Subject").encode(linesep="\r\n")


def _display_address(name: str | None, email: str) -> str:
    """`To` for one recipient; a non-ASCII name becomes RFC 2047 words, folded by CRLF."""
    cleaned = one_line(name or "")[:100]
    if not cleaned:
        return email
    if cleaned.isascii():
        return formataddr((cleaned, email))
    words = Header(cleaned, "utf-8", header_name="To").encode(linesep="\r\n")
    return f"{words} <{email}>"


def _dot_stuff(data: bytes) -> bytes:
    return re.sub(rb"(?m)^\.", b"..", data)


def _marker(nonce: str, slot: str) -> str:
    """Where a recipient's value goes: text no template or value can contain."""
    return f"\x00{nonce}:{slot}\x00"


def _header_lines(
    headers: MessageHeaders, marker: Callable[[str], str], boundary: str
) -> list[str]:
    """The message's header, with markers where each recipient's own values go."""
    subject = headers.subject
    if headers.test:
        subject = f"[TEST] {subject}"
    lines = [
        f"From: {headers.from_}",
        f"To: {marker('to')}",
        f"Subject: {_encoded_subject(subject)}",
        f"Date: {format_datetime(headers.date)}",
        f"Message-ID: {marker('message_id')}",
        "MIME-Version: 1.0",
    ]
    if headers.reply_to:
        lines.append(f"Reply-To: {headers.reply_to}")
    lines += [
        f"List-Id: {headers.list_id}",
        f"List-Unsubscribe: <{marker('unsubscribe_url')}>,",
        f" <{marker('list_unsubscribe_mailto')}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ]
    if headers.test:
        lines.append("X-Newsletter-Test: yes")
    else:
        lines.append("Precedence: bulk")
    return [
        *lines,
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        "This is a multi-part message in MIME format.",
        "",
    ]


def _body_lines(mail: ComposedMail, marker: Callable[[str], str], boundary: str) -> list[str]:
    """The text and HTML parts, with markers where each recipient's own values go."""
    # Body slots are named by their part, so render() fills each with the value
    # escaped for it (HTML-escaped in the HTML part, plain in the text part).
    text_body = mail.text.fill({slot: marker(f"text_{slot}") for slot in mail.text.slots})
    html_body = mail.html.fill({slot: marker(f"html_{slot}") for slot in mail.html.slots})
    for body in (text_body, html_body):
        if boundary in body:  # 96 random bits: never, but never is cheap to check
            raise CompositionError("MIME boundary found in the body; compose again")
    lines = []
    for subtype, body in (("plain", text_body), ("html", html_body)):
        lines += [
            f"--{boundary}",
            f"Content-Type: text/{subtype}; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            *body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n"),
        ]
    return [*lines, f"--{boundary}--", ""]


@dataclass(frozen=True)
class MessageTemplate:
    """One message split at its per-recipient slots, already in SMTP wire form."""

    mail: ComposedMail
    parts: tuple[bytes, ...]
    slots: tuple[str, ...]
    # Slots that start a line: a value there starting with "." must be dot-stuffed.
    line_start: frozenset[int]

    @classmethod
    def build(cls, mail: ComposedMail, headers: MessageHeaders) -> MessageTemplate:
        """Assemble the message for `mail` once; see the module docstring for why."""
        nonce = secrets.token_hex(8)
        marker = partial(_marker, nonce)
        boundary = f"=_rvj_{secrets.token_hex(12)}"
        lines = [*_header_lines(headers, marker, boundary), *_body_lines(mail, marker, boundary)]
        wire = _dot_stuff("\r\n".join(lines).encode("utf-8")) + b".\r\n"
        pieces = re.compile(rb"\x00" + nonce.encode() + rb":([a-z_]+)\x00").split(wire)
        parts = tuple(pieces[0::2])
        template = cls(
            mail=mail,
            parts=parts,
            slots=tuple(piece.decode() for piece in pieces[1::2]),
            line_start=frozenset(i for i, part in enumerate(parts[:-1]) if part.endswith(b"\n")),
        )
        template._check_line_lengths()
        return template

    def _check_line_lengths(self) -> None:
        # The longest line once filled: the fixed text around its slots plus the
        # longest value each slot may hold.
        current = 0
        for index, part in enumerate(self.parts):
            lines = part.split(b"\r\n")
            for line in lines[:-1]:
                if current + len(line) > MAX_LINE_OCTETS:
                    raise CompositionError(
                        "a line of the mail could exceed 998 octets; break it in the template"
                    )
                current = 0
            current += len(lines[-1])
            if index < len(self.slots):
                slot = self.slots[index].removeprefix("html_").removeprefix("text_")
                current += MAX_VALUE_OCTETS.get(slot, 300)

    def render(self, recipient: MessageRecipient) -> bytes:
        """The whole message for `recipient`, ready to follow DATA."""
        values = self._values(recipient)
        parts = self.parts
        line_start = self.line_start
        pieces = [parts[0]]
        for index, slot in enumerate(self.slots):
            value = values[slot].encode("utf-8")
            if len(value) > _SLOT_LIMITS[slot]:
                # build() promised lines under 998 octets for values up to the limit.
                raise ValueError(f"{slot} is longer than {_SLOT_LIMITS[slot]} octets")
            if value[:1] == b"." and index in line_start:
                value = b"." + value
            pieces.append(value)
            pieces.append(parts[index + 1])
        return b"".join(pieces)

    def _values(self, recipient: MessageRecipient) -> dict[str, str]:
        # Each value is cleaned once; the HTML part's are the text part's, escaped.
        text = self.mail.text_values(
            RecipientValues(
                email=recipient.email,
                name=recipient.name,
                unsubscribe_url=recipient.unsubscribe_url,
                preferences_url=recipient.preferences_url,
            )
        )
        values = {
            "to": _display_address(recipient.name, text["email"]),
            "message_id": one_line(recipient.message_id),
            "unsubscribe_url": text["unsubscribe_url"],
            "list_unsubscribe_mailto": bare(recipient.list_unsubscribe_mailto),
        }
        for key, value in text.items():
            values["text_" + key] = value
        for key, value in html_escaped(text).items():
            values["html_" + key] = value
        return values


# The limit of each slot render() fills: the header slots, and the text_ and html_ slots
# of the body, limited as the value they hold.
_SLOT_LIMITS = {
    f"{prefix}{name}": limit
    for prefix in ("", "text_", "html_")
    for name, limit in MAX_VALUE_OCTETS.items()
}
