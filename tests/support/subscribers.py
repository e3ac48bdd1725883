"""Helpers for the subscriber tests: reading tokens out of mails, table snapshots, states."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update

from newsletter.core.db import Database
from newsletter.core.models import Base
from newsletter.mail.mailer import OutgoingMail
from subscribers.addresses import keyed_hash
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.models import ConsentEvent, Subscriber, Suppression

SECRET = "test-secret-key-0123456789abcdef"  # what conftest's make_settings puts in the env
CONSENT = (
    "Ja, ik wil de nieuwsbrief van Radicale vernieuwing jeugdzorg ontvangen. "
    "Afmelden kan altijd, met één klik."
)
FORM = Requester(source="form", ip="192.0.2.10", user_agent="Mozilla/5.0 (test)")
WEB = Requester(source="web", ip="192.0.2.10", user_agent="Mozilla/5.0 (test)")
SUBSCRIBER_TABLES = (
    "subscribers",
    "confirmation_tokens",
    "consent_texts",
    "consent_events",
    "suppressions",
)

_CONFIRM_LINK = re.compile(r"/confirm/([A-Za-z0-9_-]{43})\b")
_LINK = re.compile(r"/(unsubscribe|preferences)/([A-Za-z0-9_.-]+)")


def confirm_token(mail: OutgoingMail) -> str:
    """The confirmation token in a mail's text part (and the same one in its HTML)."""
    found = _CONFIRM_LINK.findall(mail.text)
    assert len(set(found)) == 1, mail.text
    assert mail.html is not None and f"/confirm/{found[0]}" in mail.html
    return str(found[0])


def link_token(url: str) -> str:
    match = _LINK.search(url)
    assert match, url
    return match.group(2)


def subscribe(flows: SubscriberFlows, email: str, **overrides: Any) -> list[OutgoingMail]:
    values: dict[str, Any] = {
        "email": email,
        "name": None,
        "themes": [],
        "requester": FORM,
        "consent_text": CONSENT,
    }
    values.update(overrides)
    return flows.request_subscription(**values)


def subscribe_and_confirm(flows: SubscriberFlows, email: str, **overrides: Any) -> Any:
    [mail] = subscribe(flows, email, **overrides)
    done = flows.confirm(confirm_token(mail), WEB)
    assert done is not None and done.subscriber.status == "confirmed"
    view = done.subscriber
    return view


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every subscriber table, for before/after comparisons."""
    tables = Base.metadata.tables
    with db.engine.connect() as connection:
        return {
            name: sorted((tuple(row) for row in connection.execute(select(tables[name]))), key=repr)
            for name in SUBSCRIBER_TABLES
        }


def all_text(db: Database) -> str:
    """Every value in every table of the database, as one string to search in."""
    chunks = []
    with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def force_status(db: Database, email: str, status: str) -> None:
    """Put a subscriber in `status` as a bounce or complaint handler would (with suppression)."""
    with db.session() as session:
        subscriber = session.scalars(
            select(Subscriber).where(Subscriber.email_key == email.casefold())
        ).one()
        session.execute(
            update(Subscriber).where(Subscriber.id == subscriber.id).values(status=status)
        )
        session.add(
            Suppression(
                address_hash=keyed_hash(email.casefold(), SECRET),
                reason=status,
                created_at=subscriber.updated_at,
            )
        )


def status_of(db: Database, email: str) -> str | None:
    with db.session() as session:
        return session.scalar(
            select(Subscriber.status).where(Subscriber.email_key == email.casefold())
        )


def suppression_of(db: Database, email: str) -> str | None:
    with db.session() as session:
        return session.scalar(
            select(Suppression.reason).where(
                Suppression.address_hash == keyed_hash(email.casefold(), SECRET)
            )
        )


def events_of(db: Database, email: str) -> list[str]:
    """The consent log's events about an address, oldest first."""
    with db.session() as session:
        return list(
            session.scalars(
                select(ConsentEvent.event)
                .where(ConsentEvent.subject_hash == keyed_hash(email.casefold(), SECRET))
                .order_by(ConsentEvent.id)
            )
        )
