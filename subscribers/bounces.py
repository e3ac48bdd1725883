"""What came back about a subscriber changes their status: bounces, complaints, mailto.

A permanent failure, a temporary one, a spam complaint, an unsubscribe by mail: each
changes the status as docs/subscribers.md draws it, suppresses where it must, and lands
in the consent log with its reason.

    confirmed ──permanent failure────────────────────────> bounced    (suppressed)
    confirmed ──temporary failures in soft_bounce_limit
                editions within soft_bounce_days─────────> bounced    (suppressed)
    confirmed ──spam complaint───────────────────────────> complained (suppressed)
    pending | confirmed ──mail to the unsubscribe address> unsubscribed (suppressed)

Any other status is kept (the person left already, or bounced before), and the event
is still logged, except for an unsubscribe of someone who is out already (as on the web).
Every function works in the caller's transaction and locks the subscriber's row first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.config import Settings
from newsletter.core.models import Base
from subscribers.addresses import keyed_hash
from subscribers.consent import SYSTEM, Requester, record_event
from subscribers.models import Subscriber
from subscribers.records import drop_tokens, suppress

# A mail the person sent to the List-Unsubscribe address: their own request, by mail.
BY_MAIL = Requester(source="mail")


class SoftBounce(Base):
    """A temporary delivery failure of one edition to one subscriber; one row per edition,
    however many delay reports come for it."""

    __tablename__ = "soft_bounces"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "edition_id", name="uq_soft_bounces_subscriber_edition"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Cascade: an erased subscriber leaves nothing here.
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    edition_id: Mapped[int]
    received_at: Mapped[datetime]


def _locked(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id, with_for_update=True)


def _suppress_if_confirmed(
    session: Session, subscriber: Subscriber, status: str, settings: Settings, now: datetime
) -> tuple[str, bool]:
    """Move a confirmed subscriber to `status` and suppress the address; the address's
    keyed hash (for the log) and whether anything changed."""
    address_hash = keyed_hash(subscriber.email_key, settings.require_secret_key())
    changed = subscriber.status == "confirmed"
    if changed:
        subscriber.status = status
        subscriber.updated_at = now
        suppress(session, address_hash, status, now=now)
    return address_hash, changed


def record_hard_bounce(
    session: Session,
    subscriber_id: int,
    *,
    settings: Settings,
    now: datetime,
    reply: str,
    edition_id: int | None = None,
    via: str = "smtp",
) -> bool:
    """Mark a confirmed subscriber bounced and suppress the address; False if not confirmed.

    A subscriber who left in the meantime keeps their own status (they asked to leave;
    the bounce changes nothing about that), but the bounce is still logged. `via` says
    how we learnt it: `smtp` (refused while sending), `dsn` (a delivery report) or
    `soft_bounce_limit`.
    """
    subscriber = _locked(session, subscriber_id)
    if subscriber is None:
        return False
    address_hash, changed = _suppress_if_confirmed(session, subscriber, "bounced", settings, now)
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
            "via": via,
        },
    )
    return changed


def _count_once_per_edition(
    session: Session, subscriber: Subscriber, *, edition_id: int, now: datetime
) -> bool:
    """Note a temporary failure of this edition; False when it had failed before."""
    known = session.scalar(
        select(SoftBounce.id).where(
            SoftBounce.subscriber_id == subscriber.id, SoftBounce.edition_id == edition_id
        )
    )
    if known is not None:
        return False
    session.add(SoftBounce(subscriber_id=subscriber.id, edition_id=edition_id, received_at=now))
    session.flush()
    return True


def _soft_bounces_in_window(
    session: Session, subscriber: Subscriber, *, days: int, now: datetime
) -> int:
    """Editions that failed temporarily within `days`, and since the last confirmation."""
    since = now - timedelta(days=days)
    if subscriber.confirmed_at is not None and subscriber.confirmed_at > since:
        since = subscriber.confirmed_at
    count = session.scalar(
        select(func.count())
        .select_from(SoftBounce)
        .where(SoftBounce.subscriber_id == subscriber.id, SoftBounce.received_at >= since)
    )
    return int(count or 0)


def record_soft_bounce(
    session: Session,
    subscriber_id: int,
    *,
    settings: Settings,
    now: datetime,
    reason: str,
    edition_id: int,
) -> bool:
    """Count a temporary failure of edition N; True when that reaches the limit and the
    subscriber is bounced and suppressed.

    Failures count once per edition, within `[bounces] soft_bounce_days` and since the
    subscriber last confirmed (a new opt-in starts afresh).
    """
    subscriber = _locked(session, subscriber_id)
    if subscriber is None:
        return False
    limits = settings.bounces
    counted = _count_once_per_edition(session, subscriber, edition_id=edition_id, now=now)
    in_window = _soft_bounces_in_window(session, subscriber, days=limits.soft_bounce_days, now=now)
    record_event(
        session,
        settings=settings,
        now=now,
        event="soft_bounced",
        subject_hash=keyed_hash(subscriber.email_key, settings.require_secret_key()),
        requester=SYSTEM,
        subscriber_id=subscriber.id,
        details={
            "reason": reason.replace(subscriber.email, "(address)")[:500],
            "edition": edition_id,
            "counted": counted,  # False: this edition had failed before
            "in_window": in_window,
            "limit": limits.soft_bounce_limit,
        },
    )
    if subscriber.status != "confirmed" or in_window < limits.soft_bounce_limit:
        return False
    return record_hard_bounce(
        session,
        subscriber.id,
        settings=settings,
        now=now,
        reply=(
            f"temporary failures in {in_window} editions within "
            f"{limits.soft_bounce_days} days (limit {limits.soft_bounce_limit})"
        ),
        edition_id=edition_id,
        via="soft_bounce_limit",
    )


def record_complaint(
    session: Session,
    subscriber_id: int,
    *,
    settings: Settings,
    now: datetime,
    reason: str,
    edition_id: int | None,
) -> bool:
    """A spam complaint: a confirmed subscriber becomes `complained` and is suppressed;
    True when the status changed. Open sign-up links die too, as on unsubscribing."""
    subscriber = _locked(session, subscriber_id)
    if subscriber is None:
        return False
    drop_tokens(session, subscriber.id, purpose="subscribe")
    address_hash, changed = _suppress_if_confirmed(session, subscriber, "complained", settings, now)
    record_event(
        session,
        settings=settings,
        now=now,
        event="complained",
        subject_hash=address_hash,
        requester=SYSTEM,
        subscriber_id=subscriber.id,
        details={"reason": reason[:500], "edition": edition_id, "status_changed": changed},
    )
    return changed


def record_unsubscribe_by_mail(
    session: Session, subscriber_id: int, *, settings: Settings, now: datetime, reason: str
) -> bool:
    """Unsubscribe and suppress, as the one-click link does; True when the status changed.

    Someone who is out already (unsubscribed, bounced, complained) is left as they are,
    and, as for the link, nothing is logged.
    """
    subscriber = _locked(session, subscriber_id)
    if subscriber is None:
        return False
    # Whatever sign-up mail is still out there, leaving is the later word.
    drop_tokens(session, subscriber.id, purpose="subscribe")
    if subscriber.status not in ("pending", "confirmed"):
        return False
    address_hash = keyed_hash(subscriber.email_key, settings.require_secret_key())
    subscriber.status = "unsubscribed"
    subscriber.unsubscribed_at = now
    subscriber.updated_at = now
    suppress(session, address_hash, "unsubscribed", now=now)
    record_event(
        session,
        settings=settings,
        now=now,
        event="unsubscribed",
        subject_hash=address_hash,
        requester=BY_MAIL,
        subscriber_id=subscriber.id,
        details={"reason": reason[:500]},
    )
    return True
