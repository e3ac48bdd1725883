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
from newsletter.core.records import json_ready, record_from
from subscribers.addresses import Address
from subscribers.export import spreadsheet_safe
from subscribers.mentions import outbox_rows_naming
from subscribers.models import ConfirmationToken, ConsentEvent, ConsentText, Subscriber
from subscribers.records import (
    Operation,
    address_changes_to,
    events_about,
    find_by_key,
    suppression_for,
)

EXPORT_FIELDS = ("email", "name", "status", "themes", "created_at", "confirmed_at")


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


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

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json_ready(self)
        return data


@dataclass(frozen=True)
class SubscriberRecord(SubscriberSummary):
    """The subscriber row of a person's record, with their own links."""

    public_id: str
    updated_at: datetime
    unsubscribe_url: str
    preferences_url: str

    def as_json(self) -> dict[str, Any]:
        data = super().as_json()
        return {"public_id": data.pop("public_id"), **data}


@dataclass(frozen=True)
class SuppressionRecord:
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class PendingConfirmation:
    """A confirmation link that was mailed and not used yet."""

    purpose: str
    new_email: str | None
    requested: dict[str, Any]
    created_at: datetime
    expires_at: datetime


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


@dataclass(frozen=True)
class DeliveryRecord:
    """One edition sent, or being sent, to the person."""

    edition: int
    state: str
    attempts: int
    sent_at: datetime | None
    last_reply: str | None


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
        data: dict[str, Any] = json_ready(self)
        data["subscriber"] = self.subscriber.as_json() if self.subscriber else None
        return data


def list_subscribers(session: Session, *, status: str | None) -> list[SubscriberSummary]:
    """Every subscriber (or those in `status`), oldest first."""
    statement = select(Subscriber).order_by(Subscriber.created_at, Subscriber.id)
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    return [record_from(SubscriberSummary, row) for row in session.scalars(statement)]


def export_rows(session: Session, *, status: str | None) -> Iterator[dict[str, str]]:
    """Rows for a CSV file; themes are joined by ";" as the import reads them.

    Every cell is spreadsheet-safe: an address may start with "=" as well as a name.
    """
    statement = select(Subscriber).order_by(Subscriber.created_at, Subscriber.id)
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    for row in session.scalars(statement.execution_options(yield_per=500)):
        cells = {
            "email": row.email,
            "name": row.name or "",
            "status": row.status,
            "themes": ";".join(row.themes),
            "created_at": _iso(row.created_at),
            "confirmed_at": _iso(row.confirmed_at),
        }
        yield {key: spreadsheet_safe(value) for key, value in cells.items()}


def describe_person(session: Session, op: Operation, address: Address) -> PersonRecord:
    """Everything held on the person with this address: the answer to an access request."""
    subject = op.address_hash(address.key)
    subscriber = find_by_key(session, address.key)
    suppression = suppression_for(session, subject)
    consent_log = _consent_log(session, subscriber, subject)
    deliveries = _deliveries(session, subscriber, address)
    if subscriber is None and suppression is None and not consent_log and not deliveries:
        raise UnknownSubscriber(f"{address.email} is not on the list and nothing is held on it")
    return PersonRecord(
        email=address.email,
        address_hash=subject,
        subscriber=_subscriber_record(op, subscriber) if subscriber is not None else None,
        suppression=(
            record_from(SuppressionRecord, suppression) if suppression is not None else None
        ),
        pending_confirmations=_pending_confirmations(session, subscriber, address),
        consent_log=consent_log,
        deliveries=deliveries,
    )


def _subscriber_record(op: Operation, subscriber: Subscriber) -> SubscriberRecord:
    view = op.view(subscriber)
    return record_from(
        SubscriberRecord,
        subscriber,
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
    return tuple(record_from(ConsentEntry, event, consent_text=text) for event, text in rows)


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
    return tuple(record_from(PendingConfirmation, token) for token in tokens)


def _deliveries(
    session: Session, subscriber: Subscriber | None, address: Address
) -> tuple[DeliveryRecord, ...]:
    """Their own outbox rows, and every row whose server reply names the address in any
    case or form (an erasure before the reply was cut out left such rows unlinked)."""
    if subscriber is None:
        rows = outbox_rows_naming(session, {address.email}, subscriber_id=None)
    else:
        rows = outbox_rows_naming(
            session, {address.email, subscriber.email}, subscriber_id=subscriber.id
        )
    return tuple(record_from(DeliveryRecord, row, edition=row.edition_id) for row in rows)
