"""Bulk messages: built once, filled per recipient, read back with Python's email parser."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from newsletter.core.config import Settings
from newsletter.core.templating import template_environment
from newsletter.editions.compose import ArticleView, EditionContent, compose_edition
from newsletter.editions.personalized import ComposedMail, RecipientValues
from newsletter.mail.messages import MessageHeaders, MessageRecipient, MessageTemplate

DATE = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


@pytest.fixture
def mail(settings: Settings) -> ComposedMail:
    article = ArticleView(
        title="Nieuw onderzoek jeugdbescherming vraagt om actie, doe mee!",
        link="https://www.rvjeugdzorg.nl/nieuws/nieuw-onderzoek/",
        published_at=datetime(2022, 9, 12, 12, 45, tzinfo=UTC),
        categories=("Doe je mee?", "jeugdbescherming"),
        summary_html="<p>Gezinnen voelen zich niet gehoord; cliëntenraden vragen om actie.</p>",
        content_html="",
        image_url=None,
        image_alt=None,
    )
    content = EditionContent(
        number=7,
        subject="Nieuwsbrief Radicale vernieuwing jeugdzorg – 17 november 2026",
        intro_markdown=".Een regel die met een punt begint.",
        created_at=DATE,
        articles=(article,),
    )
    composed = compose_edition(content, settings, environment=template_environment(settings))
    assert composed is not None
    return composed


def headers(**changes: object) -> MessageHeaders:
    base = MessageHeaders(
        from_="Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>",
        subject="Nieuwsbrief Radicale vernieuwing jeugdzorg – 17 november 2026",
        date=DATE,
        reply_to="rvjeugdzorg@loc.nl",
        list_id="Radicale vernieuwing jeugdzorg <nieuwsbrief.rvjeugdzorg.nl>",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def recipient(**changes: str | None) -> MessageRecipient:
    base = MessageRecipient(
        email="ouder@example.org",
        name="Anneke de Vries-Ëlberg",
        unsubscribe_url="https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/abc.def",
        preferences_url="https://nieuwsbrief.rvjeugdzorg.nl/preferences/abc.ghi",
        message_id="<e7.k3j2h4@rvjeugdzorg.nl>",
        list_unsubscribe_mailto="mailto:rvjeugdzorg@loc.nl?subject=afmelden%20abc.def",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def parse(wire: bytes) -> EmailMessage:
    assert wire.endswith(b"\r\n.\r\n")
    data = wire[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers_read_back(mail: ComposedMail) -> None:
    message = parse(MessageTemplate.build(mail, headers()).render(recipient()))
    assert message["To"] == "Anneke de Vries-Ëlberg <ouder@example.org>"
    assert message["Subject"] == "Nieuwsbrief Radicale vernieuwing jeugdzorg – 17 november 2026"
    assert message["Message-ID"] == "<e7.k3j2h4@rvjeugdzorg.nl>"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Unsubscribe"] == (
        "<https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/abc.def>, "
        "<mailto:rvjeugdzorg@loc.nl?subject=afmelden%20abc.def>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Radicale vernieuwing jeugdzorg <nieuwsbrief.rvjeugdzorg.nl>"
    assert message["Reply-To"] == "rvjeugdzorg@loc.nl"
    assert message.get_content_type() == "multipart/alternative"


def test_both_parts_carry_the_recipients_links(mail: ComposedMail) -> None:
    message = parse(MessageTemplate.build(mail, headers()).render(recipient()))
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/abc.def" in text.get_content()
    assert 'href="https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/abc.def"' in html.get_content()
    assert "cliëntenraden" in text.get_content()
    assert "Anneke de Vries-Ëlberg" in html.get_content()


def test_matches_the_composed_mail_exactly(mail: ComposedMail, settings: Settings) -> None:
    message = parse(MessageTemplate.build(mail, headers()).render(recipient()))
    text = message.get_body(("plain",))
    assert text is not None
    expected = mail.text_for(
        RecipientValues(
            email="ouder@example.org",
            name="Anneke de Vries-Ëlberg",
            unsubscribe_url="https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/abc.def",
            preferences_url="https://nieuwsbrief.rvjeugdzorg.nl/preferences/abc.ghi",
        )
    )
    assert text.get_content().replace("\r\n", "\n").rstrip("\n") == expected.rstrip("\n")


def test_lines_stay_under_998_octets_and_dots_are_stuffed(mail: ComposedMail) -> None:
    wire = MessageTemplate.build(mail, headers()).render(recipient(name=".Punt"))
    lines = wire.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert all(not line.startswith(b".") or line[:2] == b".." or line == b"." for line in lines)


def test_header_injection_through_a_name_is_impossible(mail: ComposedMail) -> None:
    wire = MessageTemplate.build(mail, headers()).render(
        recipient(name="Anna\r\nBcc: slachtoffer@example.com")
    )
    message = parse(wire)
    assert message["Bcc"] is None
    assert "Bcc" not in [name for name, _ in message.items()]


def test_non_ascii_subject_is_encoded(mail: ComposedMail) -> None:
    wire = MessageTemplate.build(mail, headers()).render(recipient())
    header_block = wire.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii() or b"=?utf-8?" in header_block.lower()
    lines = header_block.split(b"\r\n")
    subject_line = next(line for line in lines if line.startswith(b"Subject:"))
    assert subject_line.isascii()


def test_test_copies_are_marked(mail: ComposedMail) -> None:
    message = parse(MessageTemplate.build(mail, headers(test=True)).render(recipient()))
    assert message["Subject"].startswith("[TEST] ")
    assert message["X-Newsletter-Test"] == "yes"
    assert message["Precedence"] is None


def test_values_too_long_for_the_line_limit_are_refused(mail: ComposedMail) -> None:
    template = MessageTemplate.build(mail, headers())
    with pytest.raises(ValueError, match="longer than"):
        template.render(recipient(unsubscribe_url="https://x.nl/" + "a" * 400))


def test_every_recipient_gets_their_own_values(mail: ComposedMail) -> None:
    template = MessageTemplate.build(mail, headers())
    first = parse(template.render(recipient()))
    second = parse(
        template.render(
            recipient(
                email="jongere@example.org",
                name=None,
                unsubscribe_url="https://nieuwsbrief.rvjeugdzorg.nl/unsubscribe/zzz.yyy",
                message_id="<e7.other@rvjeugdzorg.nl>",
            )
        )
    )
    assert second["To"] == "jongere@example.org"
    assert second["Message-ID"] != first["Message-ID"]
    body = second.get_body(("plain",))
    assert body is not None
    assert "zzz.yyy" in body.get_content() and "abc.def" not in body.get_content()
