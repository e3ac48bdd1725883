"""What a permanent delivery failure does to a subscriber: bounced, suppressed, logged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.config import Settings
from subscribers.addresses import keyed_hash
from subscribers.consent import SYSTEM, record_event
from subscribers.models import Subscriber
from subscribers.records import suppress


def record_hard_bounce(
    session: Session,
    subscriber_id: int,
    *,
    settings: Settings,
    now: datetime,
    reply: str,
    edition_id: int | None = None,
) -> bool:
    """Mark a confirmed subscriber bounced and suppress the address; False if not confirmed.

    A subscriber who left in the meantime keeps their own status (they asked to leave;
    the bounce changes nothing about that), but the bounce is still logged.
    """
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None:
        return False
    address_hash = keyed_hash(subscriber.email_key, settings.require_secret_key())
    changed = subscriber.status == "confirmed"
    if changed:
        subscriber.status = "bounced"
        subscriber.updated_at = now
        suppress(session, address_hash, "bounced", now=now)
    record_event(
        session,
        settings=settings,
        now=now,
        event="bounced",
        subject_hash=address_hash,
        requester=SYSTEM,
        subscriber_id=subscriber.id,
        # Replies often quote the address; the log keeps why, not who (that is the hash).
        details={
            "reply": reply.replace(subscriber.email, "(address)")[:500],
            "edition": edition_id,
            "status_changed": changed,
        },
    )
    return changed
