"""What staff do to the list: add, look up, export, remove, erase and purge."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, delete, func, null, or_, select, update
from sqlalchemy.orm import Session

from newsletter.core.errors import InvalidInput, SubscriberError, UnknownSubscriber
from newsletter.delivery.outbox import OutboxRow
from newsletter.mail.mailer import OutgoingMail
from subscribers.addresses import Address, address_key
from subscribers.consent import SYSTEM, Requester
from subscribers.models import (
    STATUSES,
    SUPPRESSED_STATUSES,
    ConfirmationToken,
    ConsentEvent,
    ConsentText,
    Subscriber,
)
from subscribers.optin import request_opt_in
from subscribers.records import (
    Operation,
    drop_tokens,
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
    suppression = suppression_for(session, subject)
    reason = suppression.reason if suppression is not None else None
    if reason is None and subscriber is not None and subscriber.status in SUPPRESSED_STATUSES:
        reason = subscriber.status
    if reason is not None:
        raise SubscriberError(
            f"{address.email} is suppressed ({reason}); only its own opt-in can bring it "
            "back, so add it without --confirmed to send a confirmation mail"
        )
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def subscriber_summary(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "themes": list(subscriber.themes),
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
    }


def list_subscribers(session: Session, *, status: str | None) -> list[dict[str, Any]]:
    statement = select(Subscriber).order_by(Subscriber.created_at, Subscriber.id)
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    return [subscriber_summary(row) for row in session.scalars(statement)]


@dataclass(frozen=True)
class SubscriberLine:
    """One subscriber as a list of search results shows it."""

    public_id: str
    email: str
    name: str | None
    status: str
    themes: tuple[str, ...]
    created_at: datetime
    confirmed_at: datetime | None


def search_subscribers(
    session: Session, *, text: str, status: str | None, offset: int, limit: int
) -> tuple[list[SubscriberLine], int]:
    """Subscribers whose address or name contains `text` (any case), newest first.

    `text` is matched literally: `%` and `_` are no wildcards. An empty `text` matches
    everyone. Returns the `limit` rows from `offset` on, and how many match in all.
    """
    if status is not None and status not in STATUSES:
        raise InvalidInput({"status": "unknown"})
    if offset < 0 or limit < 1:
        raise ValueError(f"offset {offset} and limit {limit}: need offset >= 0, limit >= 1")
    wanted = text.strip()
    conditions: list[ColumnElement[bool]] = []
    if wanted:
        # email_key is the casefolded address, so a casefolded search text finds it with a
        # plain LIKE on every backend; names go through lower() (ILIKE on PostgreSQL).
        conditions.append(
            or_(
                Subscriber.email_key.contains(wanted.casefold(), autoescape=True),
                Subscriber.name.icontains(wanted, autoescape=True),
            )
        )
    if status is not None:
        conditions.append(Subscriber.status == status)
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*conditions)) or 0
    rows = session.scalars(
        select(Subscriber)
        .where(*conditions)
        .order_by(Subscriber.created_at.desc(), Subscriber.id.desc())
        .offset(offset)
        .limit(limit)
    )
    lines = [
        SubscriberLine(
            public_id=row.public_id,
            email=row.email,
            name=row.name,
            status=row.status,
            themes=tuple(row.themes),
            created_at=row.created_at,
            confirmed_at=row.confirmed_at,
        )
        for row in rows
    ]
    return lines, total


def email_of(session: Session, public_id: str) -> str | None:
    """The address of the subscriber with `public_id` (the id staff pages link by)."""
    return session.scalar(select(Subscriber.email).where(Subscriber.public_id == public_id))


EXPORT_FIELDS = ("email", "name", "status", "themes", "created_at", "confirmed_at")


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


def _events_of(subscriber: Subscriber | None, subject: str) -> Any:
    """Events about the person: by row (older addresses too) or by the address's hash."""
    if subscriber is None:
        return ConsentEvent.subject_hash == subject
    return or_(ConsentEvent.subscriber_id == subscriber.id, ConsentEvent.subject_hash == subject)


def _tokens_for_address(session: Session, key: str) -> list[ConfirmationToken]:
    """Outstanding address changes *to* this address (by any subscriber)."""
    candidates = session.scalars(
        select(ConfirmationToken).where(
            ConfirmationToken.purpose == "change_email", ConfirmationToken.new_email.is_not(None)
        )
    )
    return [token for token in candidates if address_key(token.new_email or "") == key]


def describe_person(session: Session, op: Operation, address: Address) -> dict[str, Any]:
    """Everything held on the person with this address: the answer to an access request."""
    subject = op.address_hash(address.key)
    subscriber = find_by_key(session, address.key)
    suppression = suppression_for(session, subject)
    rows = session.execute(
        select(ConsentEvent, ConsentText.text)
        .outerjoin(ConsentText, ConsentText.hash == ConsentEvent.consent_text_hash)
        .where(_events_of(subscriber, subject))
        .order_by(ConsentEvent.created_at, ConsentEvent.id)
    ).all()
    if subscriber is None and suppression is None and not rows:
        raise UnknownSubscriber(f"{address.email} is not on the list and nothing is held on it")
    tokens: list[ConfirmationToken] = []
    if subscriber is not None:
        tokens = list(
            session.scalars(
                select(ConfirmationToken)
                .where(ConfirmationToken.subscriber_id == subscriber.id)
                .order_by(ConfirmationToken.created_at, ConfirmationToken.id)
            )
        )
    tokens += [t for t in _tokens_for_address(session, address.key) if t not in tokens]
    person: dict[str, Any] = {"email": address.email, "address_hash": subject}
    if subscriber is not None:
        view = op.view(subscriber)
        person["subscriber"] = {
            "public_id": subscriber.public_id,
            **subscriber_summary(subscriber),
            "updated_at": _iso(subscriber.updated_at),
            "unsubscribe_url": view.unsubscribe_url,
            "preferences_url": view.preferences_url,
        }
    else:
        person["subscriber"] = None
    person["suppression"] = (
        {"reason": suppression.reason, "created_at": _iso(suppression.created_at)}
        if suppression is not None
        else None
    )
    person["pending_confirmations"] = [
        {
            "purpose": token.purpose,
            "new_email": token.new_email,
            "requested": token.requested,
            "created_at": _iso(token.created_at),
            "expires_at": _iso(token.expires_at),
        }
        for token in tokens
    ]
    person["consent_log"] = [
        {
            "created_at": _iso(event.created_at),
            "event": event.event,
            "source": event.source,
            "ip": event.ip,
            "user_agent": event.user_agent,
            "consent_text_hash": event.consent_text_hash,
            "consent_text": text,
            "details": event.details,
        }
        for event, text in rows
    ]
    person["deliveries"] = (
        [
            {
                "edition": row.edition_id,
                "state": row.state,
                "attempts": row.attempts,
                "sent_at": _iso(row.sent_at),
                "last_reply": row.last_reply,
            }
            for row in session.scalars(
                select(OutboxRow)
                .where(OutboxRow.subscriber_id == subscriber.id)
                .order_by(OutboxRow.edition_id)
            )
        ]
        if subscriber is not None
        else []
    )
    return person


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
    known_events = session.scalar(select(ConsentEvent.id).where(_events_of(subscriber, subject)))
    if subscriber is None and known_events is None and suppression_for(session, subject) is None:
        raise UnknownSubscriber(f"{address.email} is not on the list and nothing is held on it")
    session.execute(
        update(ConsentEvent)
        .where(_events_of(subscriber, subject))
        .values(subscriber_id=None, ip=None, user_agent=None, details=null())
        .execution_options(synchronize_session=False)
    )
    for token in _tokens_for_address(session, address.key):
        session.delete(token)
    if subscriber is not None:
        drop_tokens(session, subscriber.id)
        session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
    suppress_as_erased(session, subject, now=op.now)
    # Staff's own channel only: no IP or user agent is kept with an erasure.
    op.record(session, "erased", subject_hash=subject, requester=Requester(requester.source))


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
