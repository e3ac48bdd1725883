"""Who each message is from and for: the sender's addresses, headers, links and ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from newsletter.core.config import Settings
from newsletter.delivery.engine import Delivery
from newsletter.editions.compose import EditionContent
from newsletter.mail.identities import message_id, verp_address
from newsletter.mail.mailer import return_path, sender_address
from newsletter.mail.messages import MessageHeaders, MessageRecipient, MessageTemplate
from subscribers.tokens import link_token


@dataclass(frozen=True)
class Addressing:
    """The sender-side addresses of every message of a send."""

    from_: str
    return_path: str
    domain: str
    list_id: str
    verp: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Addressing:
        domain = sender_address(settings).rpartition("@")[2]
        list_id = settings.delivery.list_id or f"nieuwsbrief.{domain}"
        return cls(
            from_=settings.sender.from_,
            return_path=return_path(settings),
            domain=domain,
            list_id=f"{settings.site.name} <{list_id}>",
            verp=settings.delivery.verp,
        )


def message_headers(
    settings: Settings, content: EditionContent, *, now: datetime, test: bool = False
) -> MessageHeaders:
    addressing = Addressing.from_settings(settings)
    return MessageHeaders(
        from_=addressing.from_,
        subject=content.subject,
        date=now,
        reply_to=settings.sender.reply_to,
        list_id=addressing.list_id,
        test=test,
    )


@dataclass(frozen=True)
class Person:
    """What a message needs to know of its subscriber."""

    id: int
    public_id: str
    email: str
    name: str | None


def delivery_for(
    settings: Settings,
    addressing: Addressing,
    *,
    edition_id: int,
    row_id: int,
    person: Person,
    template: MessageTemplate,
) -> Delivery:
    """The message of edition `edition_id` for `person`, with their own links and ids."""
    return Delivery(
        row_id=row_id,
        subscriber_id=person.id,
        template=template,
        address=partial(_addressed, settings, addressing, edition_id, person),
    )


def _addressed(
    settings: Settings, addressing: Addressing, edition_id: int, person: Person
) -> tuple[str, MessageRecipient]:
    """The envelope sender and the per-recipient values of `person`'s message."""
    secret = settings.require_secret_key()
    base = settings.site.base_url
    public_id = person.public_id
    unsubscribe_token = link_token(secret, "unsubscribe", public_id)
    envelope_from = addressing.return_path
    if addressing.verp:
        envelope_from = verp_address(
            secret, return_path=addressing.return_path, edition=edition_id, public_id=public_id
        )
    recipient = MessageRecipient(
        email=person.email,
        name=person.name,
        unsubscribe_url=f"{base}/unsubscribe/{unsubscribe_token}",
        preferences_url=f"{base}/preferences/{link_token(secret, 'preferences', public_id)}",
        message_id=message_id(
            secret, edition=edition_id, public_id=public_id, domain=addressing.domain
        ),
        list_unsubscribe_mailto=(
            f"mailto:{addressing.return_path}?subject=unsubscribe%20{unsubscribe_token}"
        ),
    )
    return envelope_from, recipient
