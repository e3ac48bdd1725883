"""The mail queue: single mails stored in the transaction that asked for them, until sent.

A request that asks for a mail (a sign-up's confirmation) writes it here in its own
transaction, so the answer never waits for SMTP and a mail is never lost with the
process: the sender (mail/queue_sender.py) sends what is due and removes it, and what
a stopped or crashed process left is sent by the next one.

    queued ──claim──> claimed (lease) ──250──> gone (its outcome in the caller's log)
      ^                  │  ├──4xx, unreachable──> queued again, due after a back-off
      │                  │  └──5xx, or too old──> gone (its failure in the caller's log)
      └── lease ran out ─┘  (the process died while sending)

A row holds the whole mail, the confirmation link too, until it is sent: the plain link
is in the database for those seconds (tokens are otherwise stored hashed only), and an
erasure removes the person's waiting mails with the rest (`drop_mails_to`). A mail
whose sender died after the server took it but before the row was removed is sent again
when the lease runs out: at least once, never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, String, Text, delete, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.models import Base, UtcDateTime
from newsletter.mail.mailer import OutgoingMail

# How long a claimed row is left to its sender before another may take it.
LEASE = timedelta(minutes=5)
# A mail not sent within this long after it was asked for is given up (and logged so).
MAX_AGE = timedelta(days=2)
FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=1)


class QueuedMail(Base):
    """One mail waiting to go out; the row is removed once it went or was given up."""

    __tablename__ = "mail_queue"
    __table_args__ = (Index("ix_mail_queue_due_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    extra_headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    message_id: Mapped[str | None] = mapped_column(String(998))
    envelope_from: Mapped[str | None] = mapped_column(String(320))
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # When it may be (re)tried; while claimed, when the claim's lease runs out.
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class Claimed:
    """A claimed row: its id, its mail, when it was queued and how often it was tried."""

    id: int
    mail: OutgoingMail
    queued_at: datetime
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed mail: sent (`error` None), failed for good, or to retry."""

    claimed: Claimed
    error: str | None = None
    retry: bool = False


def enqueue(session: Session, mails: Iterable[OutgoingMail], *, now: datetime) -> int:
    """Queue `mails` in the caller's transaction; how many."""
    rows = [
        {
            "kind": mail.kind,
            "recipient": mail.to,
            "subject": mail.subject,
            "text": mail.text,
            "html": mail.html,
            "extra_headers": dict(mail.extra_headers),
            "message_id": mail.message_id,
            "envelope_from": mail.envelope_from,
            "queued_at": now,
            "due_at": now,
            "attempts": 0,
        }
        for mail in mails
    ]
    if rows:
        session.execute(insert(QueuedMail), rows)
    return len(rows)


def _mail_of(row: QueuedMail) -> OutgoingMail:
    return OutgoingMail(
        to=row.recipient,
        subject=row.subject,
        text=row.text,
        html=row.html,
        kind=row.kind,
        extra_headers=dict(row.extra_headers or {}),
        message_id=row.message_id,
        envelope_from=row.envelope_from,
    )


def claim_due(session: Session, *, now: datetime, limit: int) -> list[Claimed]:
    """Claim up to `limit` due mails, oldest first, for one lease."""
    due = select(QueuedMail.id).where(QueuedMail.due_at <= now).order_by(QueuedMail.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if not ids:
        return []
    # The condition again: a sender elsewhere may have claimed some meanwhile.
    claimed = session.scalars(
        update(QueuedMail)
        .where(QueuedMail.id.in_(ids), QueuedMail.due_at <= now)
        .values(due_at=now + LEASE)
        .returning(QueuedMail)
    ).all()
    return sorted(
        (Claimed(row.id, _mail_of(row), row.queued_at, row.attempts) for row in claimed),
        key=lambda found: found.id,
    )


def retry_delay(attempts: int) -> timedelta:
    """The wait before try `attempts + 1`: doubling from a minute, at most an hour."""
    delay: timedelta = FIRST_RETRY * 2 ** min(attempts, 12)
    return min(delay, LAST_RETRY)


def settle(
    session: Session, outcomes: Sequence[Outcome], *, now: datetime
) -> list[tuple[OutgoingMail, str | None]]:
    """Write `outcomes` in the caller's transaction; the mails that are done, each with
    its error (None: sent), for the caller's log. A retry past MAX_AGE is given up."""
    done: list[tuple[OutgoingMail, str | None]] = []
    finished: list[int] = []
    for outcome in outcomes:
        claimed = outcome.claimed
        if outcome.retry and now - claimed.queued_at < MAX_AGE:
            session.execute(
                update(QueuedMail)
                .where(QueuedMail.id == claimed.id)
                .values(
                    due_at=now + retry_delay(claimed.attempts),
                    attempts=claimed.attempts + 1,
                    last_error=outcome.error,
                )
            )
            continue
        finished.append(claimed.id)
        error = outcome.error
        if outcome.retry:
            error = f"given up after {claimed.attempts + 1} tries: {error}"
        done.append((claimed.mail, error))
    if finished:
        session.execute(delete(QueuedMail).where(QueuedMail.id.in_(finished)))
    return done


def drop_mails_to(session: Session, addresses: Iterable[str]) -> int:
    """Remove every queued mail to one of `addresses` (any case): an erasure leaves no
    address or link behind here either. How many were removed."""
    wanted = {address.casefold() for address in addresses}
    if not wanted:
        return 0
    found = [
        row_id
        for row_id, recipient in session.execute(select(QueuedMail.id, QueuedMail.recipient))
        if recipient.casefold() in wanted
    ]
    if found:
        session.execute(delete(QueuedMail).where(QueuedMail.id.in_(found)))
    return len(found)


def queued_rows(session: Session) -> list[dict[str, Any]]:
    """The waiting rows as plain values (kind, recipient, attempts, due, last error)."""
    return [
        {
            "kind": row.kind,
            "recipient": row.recipient,
            "attempts": row.attempts,
            "due_at": row.due_at,
            "last_error": row.last_error,
        }
        for row in session.scalars(select(QueuedMail).order_by(QueuedMail.id))
    ]
