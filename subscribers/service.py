"""What every service on the subscriber list shares: a transaction per call, mails after.

Each call is one transaction; the mails it asks for are delivered after the commit,
with their outcome in the consent log.

`SubscriberFlows` (flows.py) serves the public pages and the API; `ListManagement`
(management.py) serves staff, in the CLI and under /admin. Both stand on this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, StorageError
from newsletter.mail.mailer import OutgoingMail
from subscribers.addresses import address_key
from subscribers.consent import SYSTEM
from subscribers.mails import MAIL_KINDS, SubscriberMails
from subscribers.mentions import cut_address
from subscribers.models import ConfirmationToken, Subscriber
from subscribers.records import Operation, find_by_key

T = TypeVar("T")


class ListService:
    """The subscriber list and its rules (docs/subscribers.md), on one database."""

    def __init__(self, settings: Settings, database: Database, *, clock: Clock) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._secret = settings.require_secret_key()
        self._mails = SubscriberMails(settings)

    def _operation(self) -> Operation:
        return Operation(self._settings, self._secret, self._mails, self._clock())

    def _transaction(self, work: Callable[[Session, Operation], T]) -> T:
        """Run `work` in one transaction; once more if a concurrent insert collided."""
        for attempt in range(2):
            try:
                with self._database.one_writer(), self._database.session() as session:
                    return work(session, self._operation())
            except IntegrityError as exc:
                if attempt:
                    raise StorageError(f"the subscriber list changed meanwhile: {exc}") from exc
        raise AssertionError("unreachable")

    def deliver(self, mail: OutgoingMail, send: Callable[[OutgoingMail], None]) -> bool:
        """Send `mail` with `send` and log `<kind>_mail_sent` or `_failed`; True when sent."""
        if mail.kind not in MAIL_KINDS:
            raise ValueError(f"not a subscriber mail: {mail.kind!r}")
        failure: str | None = None
        try:
            send(mail)
        except DeliveryError as exc:
            # The log keeps why, not the address: that is in the subject hash already.
            failure = cut_address(str(exc), mail.to)

        self._transaction(lambda session, op: _log_delivery(session, op, mail, failure))
        return failure is None

    def record_mail_outcomes(
        self, session: Session, outcomes: Sequence[tuple[OutgoingMail, str | None]]
    ) -> None:
        """Log mails sent by someone else (the mail queue's sender), in its transaction:
        `<kind>_mail_sent`, or `_failed` with the error (None: sent)."""
        op = self._operation()
        for mail, error in outcomes:
            if mail.kind in MAIL_KINDS:
                failure = cut_address(error, mail.to) if error is not None else None
                _log_delivery(session, op, mail, failure)


def _log_delivery(session: Session, op: Operation, mail: OutgoingMail, failure: str | None) -> None:
    """`<kind>_mail_sent` or `_failed` for `mail`, on the subscriber it went to."""
    subscriber = find_by_key(session, address_key(mail.to))
    if subscriber is None and mail.kind == "address_change":
        subscriber = session.scalars(
            select(Subscriber)
            .join(ConfirmationToken, ConfirmationToken.subscriber_id == Subscriber.id)
            .where(
                ConfirmationToken.purpose == "change_email",
                ConfirmationToken.new_email == mail.to,
            )
            .order_by(ConfirmationToken.created_at.desc())
            .limit(1)
        ).first()
    op.record(
        session,
        f"{mail.kind}_mail_{'failed' if failure else 'sent'}",
        subject_hash=op.address_hash(address_key(mail.to)),
        requester=SYSTEM,
        subscriber=subscriber,
        details={"error": failure} if failure else None,
    )
