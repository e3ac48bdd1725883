"""Reading the list for staff: lists, one person's whole record, the CSV export.

Everything here only reads, inside the caller's transaction, and returns typed records;
`as_json()` gives the shapes the CLI prints with `--json`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.errors import UnknownSubscriber
from newsletter.delivery.outbox import OutboxRow
from subscribers.addresses import Address
from subscribers.models import ConfirmationToken, ConsentEvent, ConsentText, Subscriber
from subscribers.records import (
    Operation,
    address_changes_to,
    events_about,
    find_by_key,
    suppression_for,
)

EXPORT_FIELDS = ("email", "name", "status", "themes", "created_at", "confirmed_at")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class SubscriberSummary:
    """One subscriber as `newsletter subscribers list` shows them."""

    email: str
    name: str | None
    status: str
    themes: tuple[str, ...]
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None

    @classmethod
    def of(cls, row: Subscriber) -> SubscriberSummary:
        return cls(
            email=row.email,
            name=row.name,
            status=row.status,
            themes=tuple(row.themes),
            created_at=row.created_at,
            confirmed_at=row.confirmed_at,
            unsubscribed_at=row.unsubscribed_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "status": self.status,
            "themes": list(self.themes),
            "created_at": _iso(self.created_at),
            "confirmed_at": _iso(self.confirmed_at),
            "unsubscribed_at": _iso(self.unsubscribed_at),
        }


@dataclass(frozen=True)
class SubscriberRecord(SubscriberSummary):
    """The subscriber row of a person's record, with their own links."""

    public_id: str
    updated_at: datetime
    unsubscribe_url: str
    preferences_url: str

    def as_json(self) -> dict[str, Any]:
        return {
            "public_id": self.public_id,
            **super().as_json(),
            "updated_at": _iso(self.updated_at),
            "unsubscribe_url": self.unsubscribe_url,
            "preferences_url": self.preferences_url,
        }


@dataclass(frozen=True)
class SuppressionRecord:
    reason: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "created_at": _iso(self.created_at)}


@dataclass(frozen=True)
class PendingConfirmation:
    """A confirmation link that was mailed and not used yet."""

    purpose: str
    new_email: str | None
    requested: dict[str, Any]
    created_at: datetime
    expires_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "new_email": self.new_email,
            "requested": self.requested,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
        }


@dataclass(frozen=True)
class ConsentEntry:
    """One event of the consent log, with the consent text the person saw."""

    created_at: datetime
    event: str
    source: str
    ip: str | None
    user_agent: str | None
    consent_text_hash: str | None
    consent_text: str | None
    details: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "created_at": _iso(self.created_at),
            "event": self.event,
            "source": self.source,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "consent_text_hash": self.consent_text_hash,
            "consent_text": self.consent_text,
            "details": self.details,
        }


@dataclass(frozen=True)
class DeliveryRecord:
    """One edition sent, or being sent, to the person."""

    edition: int
    state: str
    attempts: int
    sent_at: datetime | None
    last_reply: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "edition": self.edition,
            "state": self.state,
            "attempts": self.attempts,
            "sent_at": _iso(self.sent_at),
            "last_reply": self.last_reply,
        }


@dataclass(frozen=True)
class PersonRecord:
    """Everything held on one person: the answer to an access request."""

    email: str
    address_hash: str
    subscriber: SubscriberRecord | None
    suppression: SuppressionRecord | None
    pending_confirmations: tuple[PendingConfirmation, ...]
    consent_log: tuple[ConsentEntry, ...]
    deliveries: tuple[DeliveryRecord, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "address_hash": self.address_hash,
            "subscriber": self.subscriber.as_json() if self.subscriber else None,
            "suppression": self.suppression.as_json() if self.suppression else None,
            "pending_confirmations": [token.as_json() for token in self.pending_confirmations],
            "consent_log": [event.as_json() for event in self.consent_log],
            "deliveries": [delivery.as_json() for delivery in self.deliveries],
        }


def list_subscribers(session: Session, *, status: str | None) -> list[SubscriberSummary]:
    """Every subscriber (or those in `status`), oldest first."""
    statement = select(Subscriber).order_by(Subscriber.created_at, Subscriber.id)
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    return [SubscriberSummary.of(row) for row in session.scalars(statement)]


def spreadsheet_safe(value: str) -> str:
    """A cell that spreadsheets show as text: no formula from a name like "=HYPERLINK(...)"."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_rows(session: Session, *, status: str | None) -> Iterator[dict[str, str]]:
    """Rows for a CSV file; themes are joined by ";" as the import reads them."""
    statement = select(Subscriber).order_by(Subscriber.created_at, Subscriber.id)
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    for row in session.scalars(statement.execution_options(yield_per=500)):
        yield {
            "email": row.email,
            "name": spreadsheet_safe(row.name or ""),
            "status": row.status,
            "themes": ";".join(row.themes),
            "created_at": _iso(row.created_at) or "",
            "confirmed_at": _iso(row.confirmed_at) or "",
        }


def describe_person(session: Session, op: Operation, address: Address) -> PersonRecord:
    """Everything held on the person with this address: the answer to an access request."""
    subject = op.address_hash(address.key)
    subscriber = find_by_key(session, address.key)
    suppression = suppression_for(session, subject)
    consent_log = _consent_log(session, subscriber, subject)
    if subscriber is None and suppression is None and not consent_log:
        raise UnknownSubscriber(f"{address.email} is not on the list and nothing is held on it")
    return PersonRecord(
        email=address.email,
        address_hash=subject,
        subscriber=_subscriber_record(op, subscriber) if subscriber is not None else None,
        suppression=(
            SuppressionRecord(suppression.reason, suppression.created_at)
            if suppression is not None
            else None
        ),
        pending_confirmations=_pending_confirmations(session, subscriber, address),
        consent_log=consent_log,
        deliveries=_deliveries(session, subscriber) if subscriber is not None else (),
    )


def _subscriber_record(op: Operation, subscriber: Subscriber) -> SubscriberRecord:
    view = op.view(subscriber)
    summary = SubscriberSummary.of(subscriber)
    return SubscriberRecord(
        **vars(summary),
        public_id=subscriber.public_id,
        updated_at=subscriber.updated_at,
        unsubscribe_url=view.unsubscribe_url,
        preferences_url=view.preferences_url,
    )


def _consent_log(
    session: Session, subscriber: Subscriber | None, subject: str
) -> tuple[ConsentEntry, ...]:
    rows = session.execute(
        select(ConsentEvent, ConsentText.text)
        .outerjoin(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
        .where(events_about(subscriber, subject))
        .order_by(ConsentEvent.created_at, ConsentEvent.id)
    ).all()
    return tuple(
        ConsentEntry(
            created_at=event.created_at,
            event=event.event,
            source=event.source,
            ip=event.ip,
            user_agent=event.user_agent,
            consent_text_hash=event.consent_text_hash,
            consent_text=text,
            details=event.details,
        )
        for event, text in rows
    )


def _pending_confirmations(
    session: Session, subscriber: Subscriber | None, address: Address
) -> tuple[PendingConfirmation, ...]:
    """The person's own open confirmations, and address changes *to* this address."""
    tokens: list[ConfirmationToken] = []
    if subscriber is not None:
        tokens = list(
            session.scalars(
                select(ConfirmationToken)
                .where(ConfirmationToken.subscriber_id == subscriber.id)
                .order_by(ConfirmationToken.created_at, ConfirmationToken.id)
            )
        )
    tokens += [t for t in address_changes_to(session, address.key) if t not in tokens]
    return tuple(
        PendingConfirmation(
            purpose=token.purpose,
            new_email=token.new_email,
            requested=token.requested,
            created_at=token.created_at,
            expires_at=token.expires_at,
        )
        for token in tokens
    )


def _deliveries(session: Session, subscriber: Subscriber) -> tuple[DeliveryRecord, ...]:
    rows = session.scalars(
        select(OutboxRow)
        .where(OutboxRow.subscriber_id == subscriber.id)
        .order_by(OutboxRow.edition_id)
    )
    return tuple(
        DeliveryRecord(
            edition=row.edition_id,
            state=row.state,
            attempts=row.attempts,
            sent_at=row.sent_at,
            last_reply=row.last_reply,
        )
        for row in rows
    )
