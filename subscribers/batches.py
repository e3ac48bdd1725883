"""Importing a file's valid rows a batch at a time, by the rules of `add`, in one transaction.

What `staff.add_address` does for one address, done for a batch of rows with a few
queries: one read of the batch's subscribers (locked until the commit), one of their
suppressions (confirmed) or recent mail requests (pending), and one statement each
for the new subscribers, consent events and confirmation tokens. The caller commits a
batch as a whole, so a subscriber is never stored without its consent event. A file's
rows are unique by address already (`read_rows` reports repeats); several addresses of
one mailbox (`a+1@`, `a+2@`) share the mail limit within the batch as they would one
after another.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ScalarSelect, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from newsletter.mail.mailer import OutgoingMail
from subscribers.consent import Requester, logged_ip, logged_user_agent
from subscribers.importing import ImportReport, ImportRow, RowProblem
from subscribers.models import (
    SUPPRESSED_STATUSES,
    ConfirmationToken,
    ConsentEvent,
    Subscriber,
    Suppression,
)
from subscribers.records import LIMIT_WINDOW, MAIL_REQUEST_EVENTS, Operation
from subscribers.staff import suppressed_notice
from subscribers.tokens import confirm_url, new_confirmation_token, new_public_id

# Rows per transaction: large enough that a commit's cost is shared by many rows, small
# enough that a batch's parameters stay far below SQLite's limit of variables per query.
BATCH_ROWS = 2000
# The tables themselves: Core inserts skip the ORM's bookkeeping per row, which a batch
# does not need (nothing is read back).
SUBSCRIBERS = cast(Table, Subscriber.__table__)
CONSENT_EVENTS = cast(Table, ConsentEvent.__table__)
CONFIRMATION_TOKENS = cast(Table, ConfirmationToken.__table__)
MAIL_LIMIT_REASON = "this address had its confirmation mails for today"


@dataclass(frozen=True)
class _Known:
    """A subscriber a batch row names, as far as importing needs it."""

    id: int
    email: str
    status: str


def import_batch(
    session: Session,
    op: Operation,
    rows: Sequence[ImportRow],
    *,
    requester: Requester,
    confirmed: bool,
    consent_note: str | None,
    mails: ConfirmationMails,
) -> ImportReport:
    """Add `rows` as `staff.add_address` adds each (event `imported` when confirmed);
    what happened, in the caller's transaction. Problems are those the database tells
    (suppressed, mail limit); the rows' own problems were reported by `read_rows`."""
    known = _known_subscribers(session, [row.address.key for row in rows])
    writer = _BatchWriter(session, op, requester)
    report = ImportReport()
    note = {"note": consent_note} if consent_note else {}
    if confirmed:
        _confirm_rows(session, op, rows, known, writer, report, note)
    else:
        _request_opt_ins(session, op, rows, known, writer, report, note, mails)
    return report


def _known_subscribers(session: Session, keys: Sequence[str]) -> dict[str, _Known]:
    """The subscribers with these address keys, locked until the commit (as `add` does)."""
    found = session.execute(
        select(Subscriber.id, Subscriber.email_key, Subscriber.email, Subscriber.status)
        .where(Subscriber.email_key.in_(keys))
        .with_for_update()
    )
    return {key: _Known(id, email, status) for id, key, email, status in found}


class _BatchWriter:
    """Collects a batch's new subscribers, consent events and tokens, and writes each kind
    with one statement for many rows, subscribers first.

    An event or token names its subscriber by address key, and the statement looks the
    id up (`subscriber_of_key`): no new ids need to travel back to Python first (a
    multi-row INSERT ... RETURNING costs the client more than the lookup costs the
    server), and an event about an address without a row gets NULL, as it should.
    """

    def __init__(self, session: Session, op: Operation, requester: Requester) -> None:
        self._session = session
        self._op = op
        self._requester = requester
        self._ip = logged_ip(requester.ip, op.settings)
        self._user_agent = logged_user_agent(requester.user_agent)
        self._subscribers: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._tokens: list[dict[str, Any]] = []

    def new_subscriber(self, row: ImportRow, status: str) -> None:
        now = self._op.now
        self._subscribers.append(
            {
                "public_id": new_public_id(),
                "email": row.address.email,
                "email_key": row.address.key,
                "name": row.name,
                "status": status,
                "themes": list(row.themes),
                "created_at": now,
                "updated_at": now,
                "confirmed_at": now if status == "confirmed" else None,
                "unsubscribed_at": None,
            }
        )

    def event(
        self,
        row: ImportRow,
        event: str,
        *,
        subject_hash: str,
        details: dict[str, Any],
        mailbox_hash: str | None = None,
    ) -> None:
        """One consent event about `row`'s address, as `consent.record_event` writes it."""
        if self._requester.staff_name is not None:
            details = {**details, "staff": self._requester.staff_name}
        self._events.append(
            {
                "subscriber_key": row.address.key,
                "subject_hash": subject_hash,
                "mailbox_hash": mailbox_hash,
                "event": event,
                "source": self._requester.source,
                "ip": self._ip,
                "user_agent": self._user_agent,
                "consent_text_hash": None,
                "details": details or None,
                "created_at": self._op.now,
            }
        )

    def token(self, row: ImportRow) -> str:
        """A subscribe confirmation for what `row` asks; the token for the mail's link."""
        token, token_hash = new_confirmation_token()
        now = self._op.now
        self._tokens.append(
            {
                "subscriber_key": row.address.key,
                "token_hash": token_hash,
                "purpose": "subscribe",
                "new_email": None,
                "requested": {
                    "name": row.name,
                    "themes": list(row.themes),
                    "consent_text_hash": None,
                },
                "created_at": now,
                "expires_at": now + timedelta(hours=self._op.settings.subscribers.confirm_hours),
            }
        )
        return token

    def write(self) -> None:
        if self._subscribers:
            self._session.execute(insert(SUBSCRIBERS), self._subscribers)
        if self._events:
            statement = insert(CONSENT_EVENTS).values(subscriber_id=subscriber_of_key())
            self._session.execute(statement, self._events)
        if self._tokens:
            statement = insert(CONFIRMATION_TOKENS).values(subscriber_id=subscriber_of_key())
            self._session.execute(statement, self._tokens)


def subscriber_of_key() -> ScalarSelect[int]:
    """The id of the subscriber whose address key is the parameter `subscriber_key`."""
    return (
        select(SUBSCRIBERS.c.id)
        .where(SUBSCRIBERS.c.email_key == bindparam("subscriber_key"))
        .scalar_subquery()
    )


def _confirm_rows(
    session: Session,
    op: Operation,
    rows: Sequence[ImportRow],
    known: dict[str, _Known],
    writer: _BatchWriter,
    report: ImportReport,
    note: dict[str, str],
) -> None:
    """`add --confirmed` for each row: confirmed now, unless suppressed or confirmed already."""
    subjects = {row.address.key: op.address_hash(row.address.key) for row in rows}
    suppressions = dict(
        session.execute(
            select(Suppression.address_hash, Suppression.reason).where(
                Suppression.address_hash.in_(list(subjects.values()))
            )
        ).all()
    )
    promoted: list[dict[str, Any]] = []
    for row in rows:
        subscriber = known.get(row.address.key)
        if subscriber is not None and subscriber.status == "confirmed":
            report.unchanged += 1
            continue
        subject = subjects[row.address.key]
        reason = suppressions.get(subject)
        if reason is None and subscriber is not None and subscriber.status in SUPPRESSED_STATUSES:
            reason = subscriber.status
        if reason is not None:
            report.problems.append(
                RowProblem(row.line, suppressed_notice(row.address.email, reason), "suppressed")
            )
            continue
        if subscriber is None:
            writer.new_subscriber(row, "confirmed")
        else:
            promoted.append(
                {
                    "id": subscriber.id,
                    "name": row.name,
                    "themes": list(row.themes),
                    "status": "confirmed",
                    "confirmed_at": op.now,
                    "updated_at": op.now,
                }
            )
        writer.event(
            row, "imported", subject_hash=subject, details={"themes": list(row.themes), **note}
        )
        report.confirmed += 1
    if promoted:
        session.execute(update(Subscriber), promoted)
        session.execute(
            delete(ConfirmationToken).where(
                ConfirmationToken.subscriber_id.in_([values["id"] for values in promoted]),
                ConfirmationToken.purpose == "subscribe",
            )
        )
    writer.write()


def _request_opt_ins(
    session: Session,
    op: Operation,
    rows: Sequence[ImportRow],
    known: dict[str, _Known],
    writer: _BatchWriter,
    report: ImportReport,
    note: dict[str, str],
    mails: ConfirmationMails,
) -> None:
    """`add` for each row: a pending subscriber and a confirmation mail (`request_opt_in`)."""
    asking = [row for row in rows if _status(known, row) != "confirmed"]
    report.unchanged += len(rows) - len(asking)
    mailboxes = {row.address.key: op.mailbox_hash(row.address.key) for row in asking}
    requested = _recent_mail_requests(session, op, set(mailboxes.values()))
    limit = op.settings.subscribers.max_confirmation_mails_per_day
    waiting: list[int] = []
    planned: list[tuple[ImportRow, str, str]] = []
    for row in asking:
        subscriber = known.get(row.address.key)
        subject = op.address_hash(row.address.key)
        mailbox = mailboxes[row.address.key]
        logged = {"themes": list(row.themes), **note}
        if requested[mailbox] >= limit:
            writer.event(
                row,
                "mail_limit_reached",
                subject_hash=subject,
                details={"request": "subscribe", **logged},
            )
            report.problems.append(RowProblem(row.line, MAIL_LIMIT_REASON, "mail_limit"))
            continue
        requested[mailbox] += 1
        if subscriber is None:
            writer.new_subscriber(row, "pending")
            email = row.address.email
        else:
            email = subscriber.email
            waiting.append(subscriber.id)
        writer.event(
            row,
            "subscribe_requested",
            subject_hash=subject,
            mailbox_hash=mailbox,
            details=logged,
        )
        planned.append((row, email, writer.token(row)))
        report.pending += 1
    if waiting:
        # A pending row stays until purge_unconfirmed_days after its newest request.
        session.execute(
            update(Subscriber).where(Subscriber.id.in_(waiting)).values(updated_at=op.now)
        )
    writer.write()
    for row, email, token in planned:
        report.mails.append(mails.confirmation(email, token, row.themes))


def _status(known: dict[str, _Known], row: ImportRow) -> str | None:
    subscriber = known.get(row.address.key)
    return subscriber.status if subscriber is not None else None


def _recent_mail_requests(session: Session, op: Operation, mailboxes: set[str]) -> Counter[str]:
    """How many mails each mailbox had in the last 24 hours (`mails_requested_recently`)."""
    counts: Counter[str] = Counter()
    if not mailboxes:
        return counts
    found = session.execute(
        select(ConsentEvent.mailbox_hash, func.count())
        .where(
            ConsentEvent.mailbox_hash.in_(mailboxes),
            ConsentEvent.event.in_(MAIL_REQUEST_EVENTS),
            ConsentEvent.created_at > op.now - LIMIT_WINDOW,
        )
        .group_by(ConsentEvent.mailbox_hash)
    )
    for mailbox, count in found:
        if mailbox is not None:
            counts[mailbox] = int(count)
    return counts


class ConfirmationMails:
    """Confirmation mails for many addresses: rendered once per choice of themes, with a
    placeholder where the link's token goes, then filled in for each address.

    The token is URL-safe base64, which neither the text nor the HTML template escapes,
    so the filled-in mail is the one `SubscriberMails.confirmation` renders.
    """

    def __init__(self, op: Operation) -> None:
        self._op = op
        self._placeholder = f"tokenplaceholder{secrets.token_hex(16)}"
        self._rendered: dict[tuple[str, ...], OutgoingMail] = {}

    def confirmation(self, to: str, token: str, themes: tuple[str, ...]) -> OutgoingMail:
        template = self._rendered.get(themes)
        if template is None:
            url = confirm_url(self._op.settings, self._placeholder)
            template = self._op.mails.confirmation(to, confirm_url=url, themes=themes)
            self._rendered[themes] = template
        fill = self._placeholder
        return replace(
            template,
            to=to,
            subject=template.subject.replace(fill, token),
            text=template.text.replace(fill, token),
            html=template.html.replace(fill, token) if template.html is not None else None,
        )
