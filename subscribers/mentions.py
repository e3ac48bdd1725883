"""An address in what mail servers wrote back: found and cut out in any case and encoded form.

Servers quote the recipient in their replies, and not always as we sent it: in small
letters or capitals, between `<>` or quotes, with the domain in IDNA (punycode) or in
Unicode, percent-encoded in a link, or xtext-encoded as in a DSN's ORCPT. The outbox
keeps why a message failed, never who it was for (delivery/store.py cuts the address out
as it writes), and an erasure and an access request must find every such form.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterator
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter.delivery.outbox import OutboxRow

CUT = "(address)"
# Not part of the match when the text goes on with another character of an address:
# `janouk@…` is someone else, and so is `anouk@example.org.uk`. A percent-encoded
# character (`%3C`, an encoded `<`) may come right before an address in a link.
_STARTS = r"(?:(?<=%[0-9A-Fa-f]{2})|(?<![\w.+-]))"
_ENDS = r"(?![\w-]|\.[\w-])"


def _domains(email: str, domain: str) -> set[str]:
    """The domain as given, in Unicode and in IDNA (whichever of them it is not)."""
    found = {domain}
    try:
        validated = validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return found
    found |= {validated.domain, validated.ascii_domain}
    return found


def _xtext(value: str) -> str:
    """RFC 3461's xtext: `+`, `=` and all but printable ASCII as `+HH`."""
    return "".join(
        f"+{byte:02X}" if byte in (0x2B, 0x3D) or not 33 <= byte <= 126 else chr(byte)
        for byte in value.encode("utf-8")
    )


def _forms(email: str) -> Iterator[str]:
    local, _, domain = email.rpartition("@")
    for host in _domains(email, domain):
        plain = f"{local}@{host}"
        yield plain
        yield f'"{local}"@{host}'
        yield quote(plain, safe="")
        yield f"{quote(local, safe='')}%40{host}"
        yield _xtext(plain)


def address_forms(email: str) -> frozenset[str]:
    """Every way a server may write `email` (matched without regard to case)."""
    forms = set(_forms(email))
    return frozenset(forms | {form.casefold() for form in forms})


@functools.lru_cache(maxsize=256)
def _pattern(email: str) -> re.Pattern[str]:
    forms = sorted(address_forms(email), key=len, reverse=True)
    alternatives = "|".join(re.escape(form) for form in forms)
    return re.compile(f"{_STARTS}(?:{alternatives}){_ENDS}", re.IGNORECASE)


def _may_name(text: str) -> bool:
    # Every form has an `@` or an encoded one: text with neither needs no pattern (most
    # replies, "250 2.0.0 Ok: queued as ...", on the send's hot path).
    return "@" in text or "%40" in text


def names_address(text: str | None, email: str) -> bool:
    """Whether `text` names `email` in any case or form."""
    return text is not None and _may_name(text) and _pattern(email).search(text) is not None


def cut_address(text: str, email: str) -> str:
    """`text` with every form of `email` replaced by "(address)"."""
    return _pattern(email).sub(CUT, text) if _may_name(text) else text


def outbox_rows_naming(
    session: Session, emails: Collection[str], *, subscriber_id: int | None
) -> list[OutboxRow]:
    """The outbox rows of `subscriber_id` and every row whose server reply names one of
    `emails` (the address asked about, and the row's own spelling of it).

    SQL only narrows the search to replies with an `@` in some form (portable LIKE, the
    same on SQLite and PostgreSQL); the case-insensitive match is done here.
    """
    maybe = or_(
        OutboxRow.last_reply.contains("@", autoescape=True),
        OutboxRow.last_reply.contains("%40", autoescape=True),
    )
    if subscriber_id is not None:
        maybe = or_(OutboxRow.subscriber_id == subscriber_id, maybe)
    statement = select(OutboxRow).where(maybe).order_by(OutboxRow.edition_id, OutboxRow.id)
    return [
        row
        for row in session.scalars(statement)
        if (subscriber_id is not None and row.subscriber_id == subscriber_id)
        or any(names_address(row.last_reply, email) for email in emails)
    ]
