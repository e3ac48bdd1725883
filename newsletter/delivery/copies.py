"""Copies that change nothing: test copies to staff, and a dry run into .eml files."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, EditionError
from newsletter.core.templating import template_environment
from newsletter.delivery.addressing import Addressing, Person, delivery_for, message_headers
from newsletter.delivery.recipients import confirmed_subscribers, subscribers_by_id, variant_of
from newsletter.delivery.send import message_templates
from newsletter.editions.compose import EditionContent, compose_edition
from newsletter.editions.lifecycle import get_edition
from newsletter.editions.preview import edition_content
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.mailer import smtp_options
from newsletter.mail.messages import MessageRecipient, MessageTemplate
from newsletter.mail.smtp import SmtpConnection


def _test_recipient(
    settings: Settings, email: str, *, edition: int, index: int, now: datetime
) -> MessageRecipient:
    """Links that lead nowhere: a test copy must not let staff unsubscribe anyone."""
    addressing = Addressing.from_settings(settings)
    base = settings.site.base_url
    return MessageRecipient(
        email=email,
        name=None,
        unsubscribe_url=f"{base}/unsubscribe/test-copy",
        preferences_url=f"{base}/preferences/test-copy",
        message_id=f"<test.{edition}.{now.timestamp():.0f}.{index}@{addressing.domain}>",
        list_unsubscribe_mailto=f"mailto:{addressing.return_path}?subject=unsubscribe%20test",
    )


async def _send_test_copies(
    settings: Settings, content: EditionContent, addresses: Sequence[str], *, now: datetime
) -> list[str]:
    mail = compose_edition(content, settings, environment=template_environment(settings))
    if mail is None:
        raise EditionError(f"edition {content.number} has no articles to send")
    template = MessageTemplate.build(mail, message_headers(settings, content, now=now, test=True))
    signer = DkimSigner.from_settings(settings)
    sender = Addressing.from_settings(settings).return_path
    refused = []
    async with await SmtpConnection.open(smtp_options(settings)) as connection:
        for index, address in enumerate(addresses):
            payload = template.render(
                _test_recipient(settings, address, edition=content.number, index=index, now=now)
            )
            if signer is not None:
                payload = signer.sign_wire(payload)
            result = await connection.send(sender, [address], payload)
            if address not in result.delivered:
                refused.append(f"{address}: {result.reply_for(address)}")
    return refused


def send_test(
    settings: Settings, database: Database, number: int, addresses: Sequence[str], *, clock: Clock
) -> None:
    """Edition N to staff addresses, marked as a test; no state changes anywhere."""
    with database.session() as session:
        content = edition_content(get_edition(session, number))
    refused = asyncio.run(_send_test_copies(settings, content, addresses, now=clock()))
    if refused:
        raise DeliveryError("the SMTP server refused the test copy for " + "; ".join(refused))


def dry_run(
    settings: Settings, database: Database, number: int, out_dir: Path, *, clock: Clock
) -> int:
    """Every message edition N would send now, as .eml files in `out_dir`; no SMTP, no state."""
    with database.session() as session:
        edition = get_edition(session, number)
        content = edition_content(edition)
        candidates = list(confirmed_subscribers(session))
        people = subscribers_by_id(session, [c.id for c in candidates])
    variants = sorted({variant_of(c.themes, settings) for c in candidates})
    templates = message_templates(content, settings, variants, now=clock())
    addressing = Addressing.from_settings(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for candidate in candidates:
        template = templates.get(variant_of(candidate.themes, settings))
        if template is None:
            continue
        person = people[candidate.id]
        delivery = delivery_for(
            settings,
            addressing,
            edition_id=number,
            row_id=0,
            person=Person(person.id, person.public_id, person.email, person.name),
            template=template,
        )
        wire = template.render(delivery.recipient)
        written += 1
        name = f"{written:06d}-{people[candidate.id].public_id}.eml"
        (out_dir / name).write_bytes(wire[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n."))
    return written
