"""Double opt-in: asking an address to confirm, and carrying out a confirmation token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.mail.mailer import OutgoingMail
from subscribers.addresses import Address, address_key
from subscribers.consent import Requester, remember_consent_text
from subscribers.models import ConfirmationToken, Subscriber
from subscribers.records import (
    Operation,
    drop_tokens,
    find_by_key,
    issue_confirmation,
    lift_suppression,
    mail_limit_reached,
    new_subscriber,
)
from subscribers.tokens import confirm_url, preferences_url, unsubscribe_url

# What confirming an address change did (docs/subscribers.md has the table).
ChangeOutcome = Literal["changed", "changed_not_subscribed", "left_before_change", "address_in_use"]
# Statuses of someone who chose to stop the newsletter themselves.
LEFT = ("unsubscribed", "complained")


def request_opt_in(
    session: Session,
    op: Operation,
    address: Address,
    *,
    name: str | None,
    themes: Sequence[str],
    requester: Requester,
    consent_text: str | None = None,
    details: dict[str, Any] | None = None,
    notice_if_confirmed: bool = True,
) -> list[OutgoingMail]:
    """Apply a subscribe request to `address` by the rules of docs/subscribers.md.

    Returns the mail to send (a confirmation, or a notice for a confirmed address), or
    nothing when the address had its mails for today. A confirmed address gets nothing
    at all with `notice_if_confirmed=False` (staff adding someone who is on the list).
    """
    subject = op.address_hash(address.key)
    mailbox = op.mailbox_hash(address.key)
    subscriber = find_by_key(session, address.key, lock=True)
    if subscriber is not None and subscriber.status == "confirmed" and not notice_if_confirmed:
        return []
    text_hash = remember_consent_text(session, consent_text, now=op.now) if consent_text else None
    logged = {"themes": list(themes), **(details or {})}
    if mail_limit_reached(
        session,
        op,
        subject,
        mailbox_hash=mailbox,
        request="subscribe",
        requester=requester,
        subscriber=subscriber,
        consent_text_hash=text_hash,
        details=logged,
    ):
        return []
    if subscriber is None:
        # Also the way back for an erased address: its suppression stays until it confirms.
        subscriber = new_subscriber(
            session, op, address, name=name, themes=themes, status="pending"
        )
    op.record(
        session,
        "subscribe_requested",
        subject_hash=subject,
        mailbox_hash=mailbox,
        requester=requester,
        subscriber=subscriber,
        consent_text_hash=text_hash,
        details=logged,
    )
    if subscriber.status == "confirmed":
        link = preferences_url(op.settings, subscriber.public_id)
        return [op.mails.already_subscribed(subscriber.email, preferences_url=link)]
    return [_ask_to_confirm(session, op, subscriber, name=name, themes=themes, text_hash=text_hash)]


def _ask_to_confirm(
    session: Session,
    op: Operation,
    subscriber: Subscriber,
    *,
    name: str | None,
    themes: Sequence[str],
    text_hash: str | None,
) -> OutgoingMail:
    """A new confirmation link for what was asked, and the mail that carries it."""
    # A pending row stays until purge_unconfirmed_days after its newest request.
    subscriber.updated_at = op.now
    token = issue_confirmation(
        session,
        op,
        subscriber,
        purpose="subscribe",
        requested={"name": name, "themes": list(themes), "consent_text_hash": text_hash},
    )
    url = confirm_url(op.settings, token)
    return op.mails.confirmation(subscriber.email, confirm_url=url, themes=themes)


def find_valid_token(
    session: Session, op: Operation, token_hash: str, *, lock: bool = False
) -> ConfirmationToken | None:
    """The unexpired confirmation with this hash; `lock` holds it until the commit."""
    statement = select(ConfirmationToken).where(
        ConfirmationToken.token_hash == token_hash, ConfirmationToken.expires_at > op.now
    )
    if lock:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def confirm_subscription(
    session: Session,
    op: Operation,
    subscriber: Subscriber,
    clicked: ConfirmationToken,
    requester: Requester,
) -> None:
    """Make `subscriber` confirmed with what the clicked link's own request asked for.

    Never another request's: somebody else may have asked for the same address since,
    with another name and other themes, and the person confirming did not see those.
    """
    requested = clicked.requested
    previous_status = subscriber.status
    subscriber.name = requested.get("name")
    subscriber.themes = op.known_themes(requested.get("themes") or [])
    _make_confirmed(session, op, subscriber)
    # Every outstanding sign-up mail of this address is spent: it is confirmed now.
    drop_tokens(session, subscriber.id, purpose="subscribe")
    op.record(
        session,
        "confirmed",
        subject_hash=op.address_hash(subscriber.email_key),
        requester=requester,
        subscriber=subscriber,
        consent_text_hash=requested.get("consent_text_hash"),
        details={"themes": list(subscriber.themes), "previous_status": previous_status},
    )


def _make_confirmed(session: Session, op: Operation, subscriber: Subscriber) -> None:
    subscriber.status = "confirmed"
    subscriber.confirmed_at = op.now
    subscriber.unsubscribed_at = None
    subscriber.updated_at = op.now
    lift_suppression(session, op.address_hash(subscriber.email_key))


def confirm_address_change(
    session: Session,
    op: Operation,
    subscriber: Subscriber,
    new_email: str,
    requester: Requester,
) -> ChangeOutcome:
    """Carry out a confirmed move to `new_email` by the table in docs/subscribers.md."""
    if subscriber.status in LEFT:
        # Leaving is the later word: the move was asked for before, and nothing is sent.
        return "left_before_change"
    key = address_key(new_email)
    holder = find_by_key(session, key)
    if holder is not None and holder.id != subscriber.id:
        return "address_in_use"
    previous_status = subscriber.status
    subject = op.address_hash(key)
    op.record(
        session,
        "address_changed",
        subject_hash=subject,
        requester=requester,
        subscriber=subscriber,
        details={
            "previous_address_hash": op.address_hash(subscriber.email_key),
            "previous_status": previous_status,
        },
    )
    subscriber.email = new_email
    subscriber.email_key = key
    subscriber.updated_at = op.now
    drop_tokens(session, subscriber.id, purpose="change_email")
    if previous_status == "pending":
        # Its sign-up links went to the old address: they may not confirm this one.
        drop_tokens(session, subscriber.id, purpose="subscribe")
        return "changed_not_subscribed"
    if previous_status == "bounced":
        # The old address stopped working; the new one just asked for the newsletter.
        _make_confirmed(session, op, subscriber)
        op.record(
            session,
            "confirmed",
            subject_hash=subject,
            requester=requester,
            subscriber=subscriber,
            details={"themes": list(subscriber.themes), "previous_status": previous_status},
        )
        return "changed"
    # Confirmed: the new address itself asked for the newsletter, a confirmed opt-in.
    lift_suppression(session, subject)
    return "changed"


def welcome_mail(op: Operation, subscriber: Subscriber) -> OutgoingMail:
    """The welcome for someone who just confirmed their own sign-up."""
    return op.mails.welcome(
        subscriber.email,
        name=subscriber.name,
        themes=subscriber.themes,
        preferences_url=preferences_url(op.settings, subscriber.public_id),
        unsubscribe_url=unsubscribe_url(op.settings, subscriber.public_id),
    )
