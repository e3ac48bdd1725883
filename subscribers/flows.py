"""The audience service: what the web app, the CLI and the send job ask of the subscriber list.

Every method is one transaction. Public methods never tell, by an exception or by the
shape of their answer, what state an address is in: only the mail they return differs,
and that goes to the address's owner. Mails are returned, not sent, so that they leave
after the commit; `deliver` sends one and writes the outcome into the consent log.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, InvalidInput, StorageError, SubscriberError
from newsletter.mail.mailer import OutgoingMail
from subscribers import optin, staff
from subscribers.addresses import (
    address_key,
    normalize_address,
    validate_name,
    validate_themes,
)
from subscribers.consent import SYSTEM, Requester
from subscribers.importing import ImportReport, ImportRow, RowProblem, read_rows
from subscribers.mails import MAIL_KINDS, SubscriberMails
from subscribers.models import STATUSES, ConfirmationToken, Subscriber
from subscribers.records import (
    Operation,
    SubscriberView,
    drop_tokens,
    find_by_key,
    find_by_public_id,
    issue_confirmation,
    mail_limit_reached,
    suppress,
)
from subscribers.tokens import LinkPurpose, confirm_url, confirmation_token_hash, parse_link_token

__all__ = ["Audience", "ImportReport", "Requester", "RowProblem", "SubscriberView"]

T = TypeVar("T")


class Audience:
    """The subscriber list and its rules (docs/subscribers.md), on one database."""

    def __init__(self, settings: Settings, database: Database, *, clock: Clock) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._secret = settings.require_secret_key()
        self._mails = SubscriberMails(settings)

    # -- plumbing ------------------------------------------------------------------

    def _operation(self) -> Operation:
        return Operation(self._settings, self._secret, self._mails, self._clock())

    def _transaction(self, work: Callable[[Session, Operation], T]) -> T:
        """Run `work` in one transaction; once more if a concurrent insert collided."""
        for attempt in range(2):
            try:
                with self._database.session() as session:
                    return work(session, self._operation())
            except IntegrityError as exc:
                if attempt:
                    raise StorageError(f"the subscriber list changed meanwhile: {exc}") from exc
        raise AssertionError("unreachable")

    def _by_link(
        self, session: Session, token: str, purpose: LinkPurpose, *, lock: bool = False
    ) -> Subscriber | None:
        public_id = parse_link_token(self._secret, purpose, token)
        if public_id is None:
            return None
        return find_by_public_id(session, public_id, lock=lock)

    # -- sign-up and confirmation (form, API, pages) ---------------------------------

    def request_subscription(
        self,
        *,
        email: str,
        name: str | None,
        themes: Sequence[str],
        requester: Requester,
        consent_text: str,
    ) -> builtins.list[OutgoingMail]:
        """Ask `email` to confirm (or tell it it is subscribed); at most one mail back."""
        address = normalize_address(email)
        valid_name = validate_name(name)
        chosen = validate_themes(themes, self._settings)
        if not consent_text.strip():
            raise InvalidInput({"consent_text": "required"})
        return self._transaction(
            lambda session, op: optin.request_opt_in(
                session,
                op,
                address,
                name=valid_name,
                themes=chosen,
                requester=requester,
                consent_text=consent_text,
            )
        )

    def deliver(self, mail: OutgoingMail, send: Callable[[OutgoingMail], None]) -> bool:
        """Send `mail` with `send` and log `<kind>_mail_sent` or `_failed`; True when sent."""
        if mail.kind not in MAIL_KINDS:
            raise ValueError(f"not a subscriber mail: {mail.kind!r}")
        failure: str | None = None
        try:
            send(mail)
        except DeliveryError as exc:
            # The log keeps why, not the address: that is in the subject hash already.
            failure = str(exc).replace(mail.to, "(address)")

        def log(session: Session, op: Operation) -> None:
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

        self._transaction(log)
        return failure is None

    def confirmation_is_valid(self, token: str) -> bool:
        """Whether `token` would confirm something now (for GET /confirm: reads only)."""
        token_hash = confirmation_token_hash(token)
        if token_hash is None:
            return False
        with self._database.session() as session:
            return optin.find_valid_token(session, self._operation(), token_hash) is not None

    def confirm(self, token: str, requester: Requester) -> SubscriberView | None:
        """Carry out a confirmation token once; None for an unknown, used or expired one."""
        token_hash = confirmation_token_hash(token)
        if token_hash is None:
            return None

        def work(session: Session, op: Operation) -> SubscriberView | None:
            found = optin.find_valid_token(session, op, token_hash, lock=True)
            if found is None:
                return None
            subscriber = session.get(Subscriber, found.subscriber_id, with_for_update=True)
            if subscriber is None:
                return None
            if found.purpose == "change_email":
                new_email = found.new_email or ""
                if not optin.confirm_address_change(session, op, subscriber, new_email, requester):
                    return None
            else:
                optin.confirm_subscription(session, op, subscriber, requester)
            session.execute(delete(ConfirmationToken).where(ConfirmationToken.id == found.id))
            return op.view(subscriber)

        return self._transaction(work)

    # -- pages reached by a subscriber's own link -------------------------------------

    def subscriber_for(self, token: str, purpose: LinkPurpose) -> SubscriberView | None:
        """The subscriber a link token belongs to (reads only); None for any bad token."""
        with self._database.session() as session:
            subscriber = self._by_link(session, token, purpose)
            return self._operation().view(subscriber) if subscriber is not None else None

    def unsubscribe(self, token: str, requester: Requester) -> bool:
        """Unsubscribe and suppress the link's subscriber; True for a valid token, every time."""

        def work(session: Session, op: Operation) -> bool:
            subscriber = self._by_link(session, token, "unsubscribe", lock=True)
            if subscriber is None:
                return False
            # Whatever sign-up mail is still out there, leaving is the later word.
            drop_tokens(session, subscriber.id, purpose="subscribe")
            if subscriber.status not in ("pending", "confirmed"):
                return True
            subject = op.address_hash(subscriber.email_key)
            subscriber.status = "unsubscribed"
            subscriber.unsubscribed_at = op.now
            subscriber.updated_at = op.now
            suppress(session, subject, "unsubscribed", now=op.now)
            op.record(
                session,
                "unsubscribed",
                subject_hash=subject,
                requester=requester,
                subscriber=subscriber,
            )
            return True

        return self._transaction(work)

    def update_preferences(
        self,
        token: str,
        *,
        name: str | None,
        themes: Sequence[str],
        requester: Requester,
    ) -> SubscriberView | None:
        """Change name and themes through a preferences link; None for a bad token."""
        valid_name = validate_name(name)
        chosen = builtins.list(validate_themes(themes, self._settings))

        def work(session: Session, op: Operation) -> SubscriberView | None:
            subscriber = self._by_link(session, token, "preferences", lock=True)
            if subscriber is None:
                return None
            name_changed = subscriber.name != valid_name
            if name_changed or subscriber.themes != chosen:
                subscriber.name = valid_name
                subscriber.themes = chosen
                subscriber.updated_at = op.now
                op.record(
                    session,
                    "preferences_changed",
                    subject_hash=op.address_hash(subscriber.email_key),
                    requester=requester,
                    subscriber=subscriber,
                    details={"themes": chosen, "name_changed": name_changed},
                )
            return op.view(subscriber)

        return self._transaction(work)

    def request_address_change(
        self, token: str, *, new_email: str, requester: Requester
    ) -> builtins.list[OutgoingMail]:
        """Ask the new address to confirm a move; [] for a bad token or past the limit."""
        address = normalize_address(new_email)

        def work(session: Session, op: Operation) -> builtins.list[OutgoingMail]:
            subscriber = self._by_link(session, token, "preferences", lock=True)
            if subscriber is None or subscriber.email_key == address.key:
                return []
            subject = op.address_hash(address.key)
            if mail_limit_reached(session, op, subject):
                op.record(
                    session,
                    "mail_limit_reached",
                    subject_hash=subject,
                    requester=requester,
                    subscriber=subscriber,
                    details={"request": "change_email"},
                )
                return []
            op.record(
                session,
                "address_change_requested",
                subject_hash=subject,
                requester=requester,
                subscriber=subscriber,
            )
            confirmation = issue_confirmation(
                session,
                op,
                subscriber,
                purpose="change_email",
                requested={},
                new_email=address.email,
            )
            url = confirm_url(op.settings, confirmation)
            return [op.mails.address_change(address.email, confirm_url=url)]

        return self._transaction(work)

    # -- staff (CLI) -----------------------------------------------------------------

    def add(
        self,
        email: str,
        *,
        name: str | None,
        themes: Sequence[str],
        requester: Requester,
        confirmed: bool = False,
        consent_note: str | None = None,
    ) -> builtins.list[OutgoingMail]:
        """Add an address: pending with a confirmation mail, or confirmed with a consent note.

        An address that is confirmed already is left as it is (no mail). A suppressed
        address cannot be added as confirmed (SubscriberError): only its own opt-in can.
        """
        note = _consent_note(confirmed, consent_note)
        address = normalize_address(email)
        valid_name = validate_name(name)
        chosen = validate_themes(themes, self._settings)
        row = ImportRow(line=0, address=address, name=valid_name, themes=chosen)
        return self._add_row(
            row, requester=requester, confirmed=confirmed, note=note, event="added_by_staff"
        ).mails

    def _add_row(
        self, row: ImportRow, *, requester: Requester, confirmed: bool, note: str | None, event: str
    ) -> staff.AddOutcome:
        return self._transaction(
            lambda session, op: staff.add_address(
                session,
                op,
                row.address,
                name=row.name,
                themes=row.themes,
                requester=requester,
                confirmed=confirmed,
                consent_note=note,
                confirmed_event=event,
            )
        )

    def import_csv(
        self,
        text: TextIO,
        *,
        requester: Requester,
        confirmed: bool = False,
        consent_note: str | None = None,
    ) -> ImportReport:
        """Add every row of a CSV file (email,name,themes) as `add` would, each on its own.

        A bad row is reported with its line number and the others go on. The report's
        mails are the confirmations to deliver.
        """
        note = _consent_note(confirmed, consent_note)
        report = ImportReport()
        for item in read_rows(text, self._settings):
            if isinstance(item, RowProblem):
                report.problems.append(item)
                continue
            try:
                outcome = self._add_row(
                    item, requester=requester, confirmed=confirmed, note=note, event="imported"
                )
            except SubscriberError as exc:
                report.problems.append(RowProblem(item.line, str(exc)))
                continue
            if outcome.result == "confirmed":
                report.confirmed += 1
            elif outcome.result == "pending":
                report.pending += 1
                report.mails.extend(outcome.mails)
            elif outcome.result == "already_confirmed":
                report.unchanged += 1
            else:
                report.problems.append(
                    RowProblem(item.line, "this address had its confirmation mails for today")
                )
        return report

    def export(self, *, status: str | None = None) -> Iterator[dict[str, str]]:
        """Rows of email,name,status,themes,created_at,confirmed_at (themes joined by ";")."""
        _check_status(status)
        return self._export(status)

    def _export(self, status: str | None) -> Iterator[dict[str, str]]:
        with self._database.session() as session:
            yield from staff.export_rows(session, status=status)

    def list(self, *, status: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every subscriber (or those in `status`), oldest first."""
        _check_status(status)
        with self._database.session() as session:
            return staff.list_subscribers(session, status=status)

    def show(self, email: str) -> dict[str, Any]:
        """Everything held on the person with `email`, consent log and texts included."""
        address = normalize_address(email)
        with self._database.session() as session:
            return staff.describe_person(session, self._operation(), address)

    def remove(self, email: str, requester: Requester) -> None:
        """Unsubscribe on staff's word: status unsubscribed and suppressed; data kept."""
        address = normalize_address(email)
        self._transaction(
            lambda session, op: staff.remove_subscriber(session, op, address, requester)
        )

    def erase(self, email: str, requester: Requester) -> None:
        """Delete the person's data; keep a hashed suppression and an anonymous log."""
        address = normalize_address(email)
        self._transaction(lambda session, op: staff.erase_person(session, op, address, requester))

    def purge_unconfirmed(self) -> int:
        """Delete sign-ups never confirmed within purge_unconfirmed_days; how many."""
        return self._transaction(staff.purge_unconfirmed)

    def purge_expired_tokens(self) -> int:
        """Delete confirmation tokens past their time; how many."""
        return self._transaction(staff.purge_expired_tokens)


def _consent_note(confirmed: bool, consent_note: str | None) -> str | None:
    note = " ".join((consent_note or "").split()) or None
    if confirmed and note is None:
        raise InvalidInput({"consent_note": "required"})
    return note


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise InvalidInput({"status": "unknown"})
