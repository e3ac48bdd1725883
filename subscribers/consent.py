"""The consent log: who asked for what, when, from where, having read which text."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from subscribers.addresses import keyed_hash
from subscribers.models import USER_AGENT_MAX_CHARS, ConsentEvent, ConsentText
from subscribers.upserts import insert_or_ignore

# `mail`: a mail the person sent us (to the List-Unsubscribe address); `system`: what
# the product decided by itself (a bounce, a complaint, the purge); `staff`: a staff
# member under /admin, whose name goes into the event's details.
Source = Literal["form", "api", "import", "cli", "web", "mail", "system", "staff"]


@dataclass(frozen=True)
class Requester:
    """Who set an operation going: the channel, the client's IP and user agent if any,
    and the staff member's name when staff did it under /admin."""

    source: Source
    ip: str | None = None
    user_agent: str | None = None
    staff_name: str | None = None


SYSTEM = Requester(source="system")


def hash_consent_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def remember_consent_text(session: Session, text: str, *, now: datetime) -> str:
    """Store `text` once under its sha256 (a no-op when it is known) and return the hash."""
    digest = hash_consent_text(text)
    # Two requests may show a new text at the same moment: the second insert does nothing.
    insert_or_ignore(session, ConsentText, {"hash": digest, "text": text, "first_shown_at": now})
    return digest


def _normalized_ip(raw: str) -> str:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return raw.strip()[:64]


def logged_ip(ip: str | None, settings: Settings) -> str | None:
    """The client IP as `[subscribers] ip_policy` allows it to be kept."""
    if not ip or settings.subscribers.ip_policy == "none":
        return None
    normalized = _normalized_ip(ip)
    if settings.subscribers.ip_policy == "store":
        return normalized
    return keyed_hash(f"ip:{normalized}", settings.require_secret_key())


def logged_user_agent(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    return " ".join(user_agent.split())[:USER_AGENT_MAX_CHARS] or None


def record_event(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    event: str,
    subject_hash: str,
    requester: Requester,
    subscriber_id: int | None = None,
    consent_text: str | None = None,
    consent_text_hash: str | None = None,
    details: dict[str, Any] | None = None,
    mailbox_hash: str | None = None,
) -> ConsentEvent:
    """Append one event to the consent log (in the caller's transaction).

    Give the text the person saw as `consent_text` (it is stored once, by its hash), or
    the hash of a text stored before as `consent_text_hash`.
    """
    if consent_text is not None:
        consent_text_hash = remember_consent_text(session, consent_text, now=now)
    if requester.staff_name is not None:
        details = {**(details or {}), "staff": requester.staff_name}
    row = ConsentEvent(
        subscriber_id=subscriber_id,
        subject_hash=subject_hash,
        mailbox_hash=mailbox_hash,
        event=event,
        source=requester.source,
        ip=logged_ip(requester.ip, settings),
        user_agent=logged_user_agent(requester.user_agent),
        consent_text_hash=consent_text_hash,
        details=details or None,
        created_at=now,
    )
    session.add(row)
    return row
