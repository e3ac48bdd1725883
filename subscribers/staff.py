"""What staff change on the list: add, remove, erase and purge, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, null, select, update
from sqlalchemy.orm import Session

from newsletter.core.errors import SubscriberError, SuppressedAddress, UnknownSubscriber
from newsletter.mail.mailer import OutgoingMail
from newsletter.mail.queue import drop_mails_to
from subscribers.addresses import Address
from subscribers.consent import SYSTEM, Requester
from subscribers.mentions import cut_address, outbox_rows_naming
from subscribers.models import (
    SUPPRESSED_STATUSES,
    ConfirmationToken,
    ConsentEvent,
    Subscriber,
)
from subscribers.optin import request_opt_in
from subscribers.records import (
    Operation,
    address_changes_to,
    drop_tokens,
    events_about,
    find_by_key,
    new_subscriber,
    suppress,
    suppress_as_erased,
    suppression_for,
)

AddResult = Literal["confirmed", "pending", "already_confirmed", "mail_limit_reached"]


@dataclass(frozen=True)
class AddOutcome:
    """What adding one address did, and the mail to deliver for it."""

    result: AddResult
    mails: list[OutgoingMail] = field(default_factory=list)


def add_address(
    session: Session,
    op: Operation,
    address: Address,
    *,
    name: str | None,
    themes: Sequence[str],
    requester: Requester,
    confirmed: bool,
    consent_note: str | None,
    confirmed_event: str,
) -> AddOutcome:
    """Add one address as staff: opt-in by mail, or confirmed on the strength of a note.

    A suppressed address (unsubscribed, bounced, complained, erased) is never confirmed
    by staff: it raises SubscriberError, and only its own opt-in brings it back.
    """
    subject = op.address_hash(address.key)
    subscriber = find_by_key(session, address.key, lock=True)
    if subscriber is not None and subscriber.status == "confirmed":
        return AddOutcome("already_confirmed")
    note = {"note": consent_note} if consent_note else {}
    if not confirmed:
        mails = request_opt_in(
            session,
            op,
            address,
            name=name,
            themes=themes,
            requester=requester,
            details=note,
            notice_if_confirmed=False,
        )
        return AddOutcome("pending" if mails else "mail_limit_reached", mails)
    _refuse_if_suppressed(session, address, subject, subscriber)
    if subscriber is None:
        subscriber = new_subscriber(
            session, op, address, name=name, themes=themes, status="confirmed"
        )
    else:
        subscriber.name = name
        subscriber.themes = list(themes)
        subscriber.status = "confirmed"
        subscriber.confirmed_at = op.now
        subscriber.updated_at = op.now
        drop_tokens(session, subscriber.id, purpose="subscribe")
    op.record(
        session,
        confirmed_event,
        subject_hash=subject,
        requester=requester,
        subscriber=subscriber,
        details={"themes": list(themes), **note},
    )
    return AddOutcome("confirmed")


def _refuse_if_suppressed(
    session: Session, address: Address, subject: str, subscriber: Subscriber | None
) -> None:
    """SubscriberError when the address may only come back through its own opt-in."""
    suppression = suppression_for(session, subject)
    reason = suppression.reason if suppression is not None else None
    if reason is None and subscriber is not None and subscriber.status in SUPPRESSED_STATUSES:
        reason = subscriber.status
    if reason is not None:
        raise SuppressedAddress(suppressed_notice(address.email, reason))


def suppressed_notice(email: str, reason: str) -> str:
    """Why a suppressed address cannot be added as confirmed, and what can be done."""
    return (
        f"{email} is suppressed ({reason}); only its own opt-in can bring it "
        "back, so add it without --confirmed to send a confirmation mail"
    )


def change_details(
    session: Session,
    op: Operation,
    address: Address,
    *,
    name: str | None,
    themes: Sequence[str],
    requester: Requester,
) -> bool:
    """Change a person's name and themes on staff's word; False when nothing changed."""
    subscriber = find_by_key(session, address.key, lock=True)
    if subscriber is None:
        raise UnknownSubscriber(f"{address.email} is not on the list")
    name_changed = subscriber.name != name
    if not name_changed and list(themes) == list(subscriber.themes):
        return False
    subscriber.name = name
    subscriber.themes = list(themes)
    subscriber.updated_at = op.now
    op.record(
        session,
        "preferences_changed",
        subject_hash=op.address_hash(address.key),
        requester=requester,
        subscriber=subscriber,
        details={"themes": list(themes), "name_changed": name_changed},
    )
    return True


# Whom staff may send a new confirmation mail: who never confirmed, and who mail no longer
# reached (they confirm again themselves). Who left on their own is left alone.
ASK_AGAIN_STATUSES = ("pending", "bounced", "complained")


def ask_to_confirm_again(
    session: Session, op: Operation, address: Address, *, requester: Requester, note: str
) -> list[OutgoingMail]:
    """A new confirmation mail for a pending, bounced or complained person; their status
    stays until they confirm. Nothing when the address had its mails for today."""
    subscriber = find_by_key(session, address.key, lock=True)
    if subscriber is None:
        raise UnknownSubscriber(f"{address.email} is not on the list")
    if subscriber.status not in ASK_AGAIN_STATUSES:
        raise SubscriberError(
            f"{address.email} is {subscriber.status}; only someone who is pending, bounced "
            "or complained can be sent a new confirmation mail"
        )
    return request_opt_in(
        session,
        op,
        address,
        name=subscriber.name,
        themes=subscriber.themes,
        requester=requester,
        details={"note": note},
        notice_if_confirmed=False,
    )


def remove_subscriber(
    session: Session, op: Operation, address: Address, requester: Requester
) -> bool:
    """Unsubscribe on staff's word and suppress; False when it was not subscribed anyway."""
    subscriber = find_by_key(session, address.key, lock=True)
    if subscriber is None:
        raise UnknownSubscriber(f"{address.email} is not on the list")
    subject = op.address_hash(address.key)
    drop_tokens(session, subscriber.id)
    if subscriber.status in SUPPRESSED_STATUSES:
        suppress(session, subject, subscriber.status, now=op.now)
        return False
    subscriber.status = "unsubscribed"
    subscriber.unsubscribed_at = op.now
    subscriber.updated_at = op.now
    suppress(session, subject, "unsubscribed", now=op.now)
    op.record(session, "removed", subject_hash=subject, requester=requester, subscriber=subscriber)
    return True


def erase_person(session: Session, op: Operation, address: Address, requester: Requester) -> None:
    """Delete the person's data; keep a hashed suppression and an anonymous consent log."""
    subject = op.address_hash(address.key)
    subscriber = find_by_key(session, address.key, lock=True)
    known_events = session.scalar(select(ConsentEvent.id).where(events_about(subscriber, subject)))
    emails = {address.email} | ({subscriber.email} if subscriber is not None else set())
    deliveries = outbox_rows_naming(
        session, emails, subscriber_id=subscriber.id if subscriber is not None else None
    )
    if (
        subscriber is None
        and known_events is None
        and not deliveries
        and suppression_for(session, subject) is None
    ):
        raise UnknownSubscriber(f"{address.email} is not on the list and nothing is held on it")
    for row in deliveries:
        # Their rows stay (unlinked, below) for the edition's counts; a reply keeps why.
        for email in emails:
            row.last_reply = cut_address(row.last_reply, email) if row.last_reply else None
    session.flush()
    drop_mails_to(session, emails)  # a confirmation still waiting to go out, with its link
    session.execute(
        update(ConsentEvent)
        .where(events_about(subscriber, subject))
        .values(subscriber_id=None, ip=None, user_agent=None, details=null())
        .execution_options(synchronize_session=False)
    )
    for token in address_changes_to(session, address.key):
        session.delete(token)
    if subscriber is not None:
        drop_tokens(session, subscriber.id)
        session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
    suppress_as_erased(session, subject, now=op.now)
    # Staff's own channel only: no IP or user agent is kept with an erasure.
    op.record(
        session,
        "erased",
        subject_hash=subject,
        requester=Requester(requester.source, staff_name=requester.staff_name),
    )


def purge_unconfirmed(session: Session, op: Operation) -> int:
    """Delete pending rows with no request for purge_unconfirmed_days; log each anonymously."""
    cutoff = op.now - timedelta(days=op.settings.subscribers.purge_unconfirmed_days)
    stale = list(
        session.scalars(
            select(Subscriber)
            .where(Subscriber.status == "pending", Subscriber.updated_at < cutoff)
            .with_for_update()
        )
    )
    for subscriber in stale:
        subject = op.address_hash(subscriber.email_key)
        session.execute(
            update(ConsentEvent)
            .where(ConsentEvent.subscriber_id == subscriber.id)
            .values(subscriber_id=None)
            .execution_options(synchronize_session=False)
        )
        drop_tokens(session, subscriber.id)
        session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
        op.record(session, "purged", subject_hash=subject, requester=SYSTEM)
    return len(stale)


def purge_expired_tokens(session: Session, op: Operation) -> int:
    expired = list(
        session.scalars(select(ConfirmationToken.id).where(ConfirmationToken.expires_at <= op.now))
    )
    if expired:
        session.execute(delete(ConfirmationToken).where(ConfirmationToken.id.in_(expired)))
    return len(expired)
