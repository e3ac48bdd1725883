"""DKIM: a signed newsletter verifies with dkimpy, and tampering breaks it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError
from newsletter.core.templating import template_environment
from newsletter.editions.compose import ArticleView, EditionContent, compose_edition
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.messages import MessageHeaders, MessageRecipient, MessageTemplate
from tests.support.dkim import dns_with, make_key_pair, signed_header_names

DATE = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    private, public = make_key_pair(tmp_path_factory.mktemp("dkim"))
    return private.read_bytes(), public


def wire(settings: Settings) -> bytes:
    article = ArticleView(
        title="Wat als ouders gewoon om hulp kunnen vragen?",
        link="https://www.rvjeugdzorg.nl/nieuws/wat-als/",
        published_at=DATE,
        categories=("Doe je mee?",),
        summary_html="<p>Ouders geven tijdens de actiedagen aan…</p>",
        content_html="",
        image_url=None,
        image_alt=None,
    )
    content = EditionContent(
        number=3,
        subject="Nieuwsbrief – cliëntenraad",
        intro_markdown="",
        created_at=DATE,
        articles=(article,),
    )
    mail = compose_edition(content, settings, environment=template_environment(settings))
    assert mail is not None
    headers = MessageHeaders(
        from_="Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>",
        subject=content.subject,
        date=DATE,
        reply_to=None,
        list_id="Radicale vernieuwing jeugdzorg <nieuwsbrief.rvjeugdzorg.nl>",
    )
    return MessageTemplate.build(mail, headers).render(
        MessageRecipient(
            email="ouder@example.org",
            name="Ouder Één",
            unsubscribe_url="https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/a.b",
            preferences_url="https://nieuwsbrief.rvjeugdzorg.nl/preferences/a.c",
            message_id="<3.abc@rvjeugdzorg.nl>",
            list_unsubscribe_mailto="mailto:rvjeugdzorg@loc.nl?subject=afmelden%20a.b",
        )
    )


def unstuffed(signed_wire: bytes) -> bytes:
    return signed_wire[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")


def test_signed_newsletter_verifies(settings: Settings, key_pair: tuple[bytes, bytes]) -> None:
    private, public = key_pair
    signer = DkimSigner(selector="nieuwsbrief", domain="rvjeugdzorg.nl", private_key=private)
    signed = signer.sign_wire(wire(settings))
    message = unstuffed(signed)
    assert dkim.verify(message, dnsfunc=dns_with(public))
    signature = message.split(b"\r\n\r\n", 1)[0]
    for header in (
        b"from",
        b"subject",
        b"date",
        b"message-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
    ):
        assert header in signature.lower().split(b"h=", 1)[1].split(b";", 1)[0]


def test_tampering_breaks_the_signature(settings: Settings, key_pair: tuple[bytes, bytes]) -> None:
    private, public = key_pair
    signer = DkimSigner(selector="nieuwsbrief", domain="rvjeugdzorg.nl", private_key=private)
    message = unstuffed(signer.sign_wire(wire(settings)))
    tampered = message.replace(b"/unsubscribe/a.b", b"/unsubscribe/x.y", 1)
    assert tampered != message
    assert not dkim.verify(tampered, dnsfunc=dns_with(public))


def test_unreadable_key_file_is_a_config_error(make_settings: object, tmp_path: Path) -> None:
    settings = make_settings(  # type: ignore[operator]
        dkim={"key_file": str(tmp_path / "missing.pem"), "selector": "s", "domain": "d.nl"}
    )
    with pytest.raises(ConfigError, match=r"dkim\.key_file: cannot read"):
        DkimSigner.from_settings(settings)


def test_from_subject_and_the_reader_headers_are_oversigned(
    settings: Settings, key_pair: tuple[bytes, bytes]
) -> None:
    private, _ = key_pair
    signer = DkimSigner(selector="nieuwsbrief", domain="rvjeugdzorg.nl", private_key=private)
    names = signed_header_names(unstuffed(signer.sign_wire(wire(settings))))
    for header in (b"from", b"subject", b"to", b"date", b"message-id", b"list-unsubscribe"):
        # Once for the header the mail has, once more so that a second one breaks it.
        assert names.count(header) == 2, (header, names)


@pytest.mark.parametrize(
    "added",
    [
        b"From: Bank <security@bank.example>\r\n",
        b"Subject: Uw rekening is geblokkeerd\r\n",
        b"List-Unsubscribe: <https://evil.example/>\r\n",
    ],
)
def test_a_second_from_or_subject_added_on_the_way_breaks_the_signature(
    settings: Settings, key_pair: tuple[bytes, bytes], added: bytes
) -> None:
    private, public = key_pair
    signer = DkimSigner(selector="nieuwsbrief", domain="rvjeugdzorg.nl", private_key=private)
    message = unstuffed(signer.sign_wire(wire(settings)))
    assert dkim.verify(message, dnsfunc=dns_with(public))
    assert not dkim.verify(added + message, dnsfunc=dns_with(public))
