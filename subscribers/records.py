"""Reads and writes that several subscriber flows share, always inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from subscribers.addresses import Address, address_key, keyed_hash, mailbox_key
from subscribers.consent import Requester, record_event
from subscribers.mails import SubscriberMails
from subscribers.models import ConfirmationToken, ConsentEvent, Subscriber, Suppression
from subscribers.tokens import (
    new_confirmation_token,
    new_public_id,
    preferences_url,
    unsubscribe_url,
)
from subscribers.upserts import insert_or_ignore, insert_or_update

# The events that stand for one mail planned to an address: what the per-address limit
# counts. A request past the limit is logged as `mail_limit_reached` instead.
MAIL_REQUEST_EVENTS = ("subscribe_requested", "address_change_requested", "leave_link_requested")
LIMIT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class SubscriberView:
    """A subscriber as pages and callers see one, with the subscriber's own links."""

    public_id: str
    email: str
    name: str | None
    status: str
    themes: tuple[str, ...]
    unsubscribe_url: str
    preferences_url: str


@dataclass(frozen=True)
class Operation:
    """What one operation works with: settings, the secret key, the mails and its moment."""

    settings: Settings
    secret: str
    mails: SubscriberMails
    now: datetime

    def address_hash(self, key: str) -> str:
        return keyed_hash(key, self.secret)

    def record(
        self,
        session: Session,
        event: str,
        *,
        subject_hash: str,
        requester: Requester,
        subscriber: Subscriber | None = None,
        consent_text: str | None = None,
        consent_text_hash: str | None = None,
        details: dict[str, Any] | None = None,
        mailbox_hash: str | None = None,
    ) -> None:
        record_event(
            session,
            settings=self.settings,
            now=self.now,
            event=event,
            subject_hash=subject_hash,
            requester=requester,
            subscriber_id=subscriber.id if subscriber is not None else None,
            consent_text=consent_text,
            consent_text_hash=consent_text_hash,
            details=details,
            mailbox_hash=mailbox_hash,
        )

    def mailbox_hash(self, key: str) -> str:
        """The hash the per-mailbox mail limit counts under (see `mailbox_key`); for an
        address without a +tag, the same as its `address_hash`."""
        return keyed_hash(mailbox_key(key), self.secret)

    def view(self, subscriber: Subscriber) -> SubscriberView:
        return SubscriberView(
            public_id=subscriber.public_id,
            email=subscriber.email,
            name=subscriber.name,
            status=subscriber.status,
            themes=tuple(subscriber.themes),
            unsubscribe_url=unsubscribe_url(self.settings, subscriber.public_id),
            preferences_url=preferences_url(self.settings, subscriber.public_id),
        )

    def known_themes(self, themes: Sequence[str]) -> list[str]:
        """`themes` without slugs that were removed from the settings since they were chosen."""
        chosen = set(themes)
        return [slug for slug in self.settings.themes if slug in chosen]


def find_by_key(session: Session, key: str, *, lock: bool = False) -> Subscriber | None:
    """The subscriber with address key `key`; `lock` holds the row until the commit."""
    statement = select(Subscriber).where(Subscriber.email_key == key)
    if lock:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def find_by_public_id(session: Session, public_id: str, *, lock: bool = False) -> Subscriber | None:
    statement = select(Subscriber).where(Subscriber.public_id == public_id)
    if lock:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def new_subscriber(
    session: Session,
    op: Operation,
    address: Address,
    *,
    name: str | None,
    themes: Sequence[str],
    status: str,
) -> Subscriber:
    subscriber = Subscriber(
        public_id=new_public_id(),
        email=address.email,
        email_key=address.key,
        name=name,
        status=status,
        themes=list(themes),
        created_at=op.now,
        updated_at=op.now,
        confirmed_at=op.now if status == "confirmed" else None,
        unsubscribed_at=None,
    )
    session.add(subscriber)
    session.flush()
    return subscriber


def suppression_for(session: Session, address_hash: str) -> Suppression | None:
    return session.get(Suppression, address_hash)


def suppress(session: Session, address_hash: str, reason: str, *, now: datetime) -> None:
    """Put an address on the suppression list; an entry it has already is kept as it is."""
    insert_or_ignore(
        session, Suppression, {"address_hash": address_hash, "reason": reason, "created_at": now}
    )


def suppress_as_erased(session: Session, address_hash: str, *, now: datetime) -> None:
    """Suppress an erased address; an earlier reason gives way, since the row is gone."""
    insert_or_update(
        session,
        Suppression,
        {"address_hash": address_hash, "reason": "erased", "created_at": now},
        key=["address_hash"],
        update=["reason", "created_at"],
    )


def lift_suppression(session: Session, address_hash: str) -> None:
    """Only a new confirmed opt-in may call this."""
    session.execute(delete(Suppression).where(Suppression.address_hash == address_hash))


def mails_requested_recently(session: Session, mailbox_hash: str, *, now: datetime) -> int:
    """How many mails went (or are about to go) to the mailbox in the last 24 hours."""
    count = session.scalar(
        select(func.count())
        .select_from(ConsentEvent)
        .where(
            ConsentEvent.mailbox_hash == mailbox_hash,
            ConsentEvent.event.in_(MAIL_REQUEST_EVENTS),
            ConsentEvent.created_at > now - LIMIT_WINDOW,
        )
    )
    return int(count or 0)


def mail_limit_reached(
    session: Session,
    op: Operation,
    address_hash: str,
    *,
    mailbox_hash: str,
    request: str,
    requester: Requester,
    subscriber: Subscriber | None,
    consent_text_hash: str | None = None,
    details: dict[str, Any] | None = None,
) -> bool:
    """True when the mailbox had its mails for today; the refused `request` is logged."""
    limit = op.settings.subscribers.max_confirmation_mails_per_day
    if mails_requested_recently(session, mailbox_hash, now=op.now) < limit:
        return False
    op.record(
        session,
        "mail_limit_reached",
        subject_hash=address_hash,
        requester=requester,
        subscriber=subscriber,
        consent_text_hash=consent_text_hash,
        details={"request": request, **(details or {})},
    )
    return True


def issue_confirmation(
    session: Session,
    op: Operation,
    subscriber: Subscriber,
    *,
    purpose: str,
    requested: dict[str, Any],
    new_email: str | None = None,
) -> str:
    """Store a confirmation for `subscriber` and return the token for the mail's link."""
    token, token_hash = new_confirmation_token()
    session.add(
        ConfirmationToken(
            token_hash=token_hash,
            subscriber_id=subscriber.id,
            purpose=purpose,
            new_email=new_email,
            requested=requested,
            created_at=op.now,
            expires_at=op.now + timedelta(hours=op.settings.subscribers.confirm_hours),
        )
    )
    return token


def drop_tokens(session: Session, subscriber_id: int, *, purpose: str | None = None) -> None:
    statement = delete(ConfirmationToken).where(ConfirmationToken.subscriber_id == subscriber_id)
    if purpose is not None:
        statement = statement.where(ConfirmationToken.purpose == purpose)
    session.execute(statement)


def events_about(subscriber: Subscriber | None, subject: str) -> ColumnElement[bool]:
    """Events about the person: by row (older addresses too) or by the address's hash."""
    if subscriber is None:
        return ConsentEvent.subject_hash == subject
    return or_(ConsentEvent.subscriber_id == subscriber.id, ConsentEvent.subject_hash == subject)


def address_changes_to(session: Session, key: str) -> list[ConfirmationToken]:
    """Outstanding address changes *to* this address (by any subscriber)."""
    candidates = session.scalars(
        select(ConfirmationToken).where(
            ConfirmationToken.purpose == "change_email", ConfirmationToken.new_email.is_not(None)
        )
    )
    return [token for token in candidates if address_key(token.new_email or "") == key]
