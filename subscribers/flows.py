"""The subscriber's own flows: sign up, confirm, change preferences or address, leave.

What the public pages and the JSON API ask of the list. Every method is one
transaction. None of them tells, by an exception or by the shape of its answer, what
state an address is in: only the mail they return differs, and that goes to the
address's owner. Mails are returned, not sent, so that they leave after the commit;
`deliver` (service.py) sends one and writes the outcome into the consent log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete
from sqlalchemy.orm import Session

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput
from newsletter.mail.mailer import OutgoingMail
from newsletter.mail.queue import enqueue
from subscribers import optin
from subscribers.addresses import normalize_address, validate_name, validate_themes
from subscribers.consent import Requester
from subscribers.models import ConfirmationToken, Subscriber
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
from subscribers.service import ListService
from subscribers.tokens import (
    LinkPurpose,
    confirm_url,
    confirmation_token_hash,
    parse_link_token,
    unsubscribe_url,
)

ConfirmPurpose = Literal["subscribe", "change_email"]
ConfirmOutcome = Literal["subscribed"] | optin.ChangeOutcome


@dataclass(frozen=True)
class Confirmation:
    """What a used confirmation link did, to whom, and the mail to send after the commit."""

    outcome: ConfirmOutcome
    subscriber: SubscriberView
    mails: tuple[OutgoingMail, ...] = ()


class SubscriberFlows(ListService):
    """What a subscriber does to their own place on the list, through pages or the API.

    With `mail_queued`, a sign-up's mail is not returned but queued in the sign-up's
    own transaction (mail/queue.py), and `mail_queued` is called after the commit (it
    wakes the queue's sender): the web server's way, so that no mail is lost with the
    process and no answer waits for SMTP.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        clock: Clock,
        mail_queued: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(settings, database, clock=clock)
        self._mail_queued = mail_queued

    def _by_link(
        self, session: Session, token: str, purpose: LinkPurpose, *, lock: bool = False
    ) -> Subscriber | None:
        public_id = parse_link_token(self._secret, purpose, token)
        if public_id is None:
            return None
        return find_by_public_id(session, public_id, lock=lock)

    def request_subscription(
        self,
        *,
        email: str,
        name: str | None,
        themes: Sequence[str],
        requester: Requester,
        consent_text: str,
    ) -> list[OutgoingMail]:
        """Ask `email` to confirm (or tell it it is subscribed); at most one mail back
        (none when queued: see the class)."""
        address = normalize_address(email)
        valid_name = validate_name(name)
        chosen = validate_themes(themes, self._settings)
        if not consent_text.strip():
            raise InvalidInput({"consent_text": "required"})

        def work(session: Session, op: Operation) -> list[OutgoingMail]:
            mails = optin.request_opt_in(
                session,
                op,
                address,
                name=valid_name,
                themes=chosen,
                requester=requester,
                consent_text=consent_text,
            )
            if self._mail_queued is None:
                return mails
            enqueue(session, mails, now=op.now)
            return []

        mails = self._transaction(work)
        if self._mail_queued is not None:
            self._mail_queued()
        return mails

    def pending_confirmation(self, token: str) -> ConfirmPurpose | None:
        """What `token` would confirm now, a sign-up or a new address (for GET /confirm:
        reads only); None for an unknown, used or expired token."""
        token_hash = confirmation_token_hash(token)
        if token_hash is None:
            return None
        with self._database.session() as session:
            found = optin.find_valid_token(session, self._operation(), token_hash)
            if found is None or found.purpose not in ("subscribe", "change_email"):
                return None
            return "change_email" if found.purpose == "change_email" else "subscribe"

    def confirm(self, token: str, requester: Requester) -> Confirmation | None:
        """Carry out a confirmation token once; None for an unknown, used or expired one.

        The answer says what happened (docs/subscribers.md), so the page can say exactly
        that, and carries the welcome mail to send after a confirmed sign-up.
        """
        token_hash = confirmation_token_hash(token)
        if token_hash is None:
            return None

        def work(session: Session, op: Operation) -> Confirmation | None:
            found = optin.find_valid_token(session, op, token_hash, lock=True)
            if found is None:
                return None
            subscriber = session.get(Subscriber, found.subscriber_id, with_for_update=True)
            if subscriber is None:
                return None
            mails: list[OutgoingMail] = []
            outcome: ConfirmOutcome
            if found.purpose == "change_email":
                new_email = found.new_email or ""
                outcome = optin.confirm_address_change(
                    session, op, subscriber, new_email, requester
                )
            else:
                optin.confirm_subscription(session, op, subscriber, found, requester)
                outcome = "subscribed"
                if op.settings.subscribers.welcome_mail:
                    mails.append(optin.welcome_mail(op, subscriber))
            session.execute(delete(ConfirmationToken).where(ConfirmationToken.id == found.id))
            return Confirmation(outcome, op.view(subscriber), tuple(mails))

        return self._transaction(work)

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
        chosen = list(validate_themes(themes, self._settings))

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
    ) -> list[OutgoingMail]:
        """Ask the new address to confirm a move; [] for a bad token or past the limit."""
        address = normalize_address(new_email)

        def work(session: Session, op: Operation) -> list[OutgoingMail]:
            subscriber = self._by_link(session, token, "preferences", lock=True)
            if subscriber is None or subscriber.email_key == address.key:
                return []
            subject = op.address_hash(address.key)
            mailbox = op.mailbox_hash(address.key)
            if mail_limit_reached(
                session,
                op,
                subject,
                mailbox_hash=mailbox,
                request="change_email",
                requester=requester,
                subscriber=subscriber,
            ):
                return []
            op.record(
                session,
                "address_change_requested",
                subject_hash=subject,
                mailbox_hash=mailbox,
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

    def request_leave_link(self, *, email: str, requester: Requester) -> list[OutgoingMail]:
        """Mail `email` its own link to leave, when it is on the list and may still leave.

        For someone whose link does not work (an old mail, a damaged link). Like a
        sign-up, the answer never tells whether the address is on the list: only the
        mail goes, to its own mailbox, under the per-mailbox mail limit.
        """
        address = normalize_address(email)

        def work(session: Session, op: Operation) -> list[OutgoingMail]:
            subscriber = find_by_key(session, address.key, lock=True)
            if subscriber is None or subscriber.status not in ("pending", "confirmed"):
                return []
            subject = op.address_hash(address.key)
            mailbox = op.mailbox_hash(address.key)
            if mail_limit_reached(
                session,
                op,
                subject,
                mailbox_hash=mailbox,
                request="leave_link",
                requester=requester,
                subscriber=subscriber,
            ):
                return []
            op.record(
                session,
                "leave_link_requested",
                subject_hash=subject,
                mailbox_hash=mailbox,
                requester=requester,
                subscriber=subscriber,
            )
            link = unsubscribe_url(op.settings, subscriber.public_id)
            return [op.mails.leave_link(subscriber.email, unsubscribe_url=link)]

        return self._transaction(work)
