"""The people mail no longer reaches (bounced, complained): why, and since when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.models import ConsentEvent, Subscriber

RETURNED_STATUSES = ("bounced", "complained")


@dataclass(frozen=True)
class ReturnedPerson:
    """One bounced or complained person: since when, and what the server or the complaint
    said (the address cut out), from the last such event in their consent log."""

    public_id: str
    email: str
    name: str | None
    status: str
    since: datetime
    why: str | None
    edition: int | None


def returned_people(session: Session, *, limit: int) -> list[ReturnedPerson]:
    """The `limit` most recently bounced or complained people, newest first."""
    rows = session.scalars(
        select(Subscriber)
        .where(Subscriber.status.in_(RETURNED_STATUSES))
        .order_by(Subscriber.updated_at.desc(), Subscriber.id.desc())
        .limit(limit)
    )
    return [_returned(session, subscriber) for subscriber in rows]


def _returned(session: Session, subscriber: Subscriber) -> ReturnedPerson:
    event = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber.id, ConsentEvent.event == subscriber.status)
        .order_by(ConsentEvent.created_at.desc(), ConsentEvent.id.desc())
        .limit(1)
    ).first()
    details = (event.details if event is not None else None) or {}
    why = details.get("reply") or details.get("reason")
    edition = details.get("edition")
    return ReturnedPerson(
        public_id=subscriber.public_id,
        email=subscriber.email,
        name=subscriber.name,
        status=subscriber.status,
        since=event.created_at if event is not None else subscriber.updated_at,
        why=str(why) if why else None,
        edition=edition if isinstance(edition, int) else None,
    )
