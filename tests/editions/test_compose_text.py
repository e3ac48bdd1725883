"""The newsletter's text part as a reader sees it: the intro as plain text, whole links."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest

from newsletter.core.config import Settings
from newsletter.core.templating import template_environment
from newsletter.editions.compose import compose_edition, sample_recipient
from newsletter.editions.personalized import RecipientValues
from tests.support.paths import ROOT
from tests.support.sample_edition import BASE_URL, mail_settings, seed_edition

SAMPLE_INTRO = ROOT / "newsletter" / "data" / "sample-intro.md"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return mail_settings(tmp_path)


@pytest.fixture
def environment(settings: Settings) -> jinja2.Environment:
    return template_environment(settings)


def text_part(
    settings: Settings,
    environment: jinja2.Environment,
    intro: str,
    recipient: RecipientValues | None = None,
) -> str:
    mail = compose_edition(seed_edition(intro_markdown=intro), settings, environment=environment)
    assert mail is not None
    return mail.text_for(recipient or sample_recipient(settings))


def intro_of(text: str) -> str:
    """The text between the greeting and the first article's rule."""
    return text.split("Beste Voorbeeld,\n", 1)[1].split("-" * 72, 1)[0].strip()


def flowing(text: str) -> str:
    return " ".join(text.split())


def test_the_sample_intro_reads_as_text_without_markdown(
    settings: Settings, environment: jinja2.Environment
) -> None:
    intro = intro_of(text_part(settings, environment, SAMPLE_INTRO.read_text(encoding="utf-8")))
    assert "in de beweging Radicale vernieuwing jeugdzorg is gebeurd" in flowing(intro)
    assert (
        "Laat het ons weten en praat mee op ons platform "
        "(https://www.rvjeugdzorg.nl/praat-mee)." in flowing(intro)
    )
    for markup in ("**", "](", "[praat"):
        assert markup not in intro


def test_emphasis_lists_quotes_and_headings_lose_their_markers(
    settings: Settings, environment: jinja2.Environment
) -> None:
    source = (
        "# Nieuws uit de *beweging*\n\n"
        "Dit keer __drie__ dingen:\n\n"
        "- een `actiedag`\n- twee\n\n"
        "1. eerst\n2. dan\n\n"
        "> Wat als ouders gewoon om hulp kunnen vragen?\n"
    )
    intro = intro_of(text_part(settings, environment, source))
    assert intro == (
        "Nieuws uit de beweging\n\n"
        "Dit keer drie dingen:\n\n"
        "- een actiedag\n- twee\n\n"
        "1. eerst\n2. dan\n\n"
        "> Wat als ouders gewoon om hulp kunnen vragen?"
    )


def test_a_link_shows_its_address_once(settings: Settings, environment: jinja2.Environment) -> None:
    source = (
        "Lees [het manifest](https://www.rvjeugdzorg.nl/manifest/), kijk op "
        "<https://www.rvjeugdzorg.nl> of mail [rvjeugdzorg@loc.nl](mailto:rvjeugdzorg@loc.nl) "
        "of [de redactie](mailto:redactie@rvjeugdzorg.nl)."
    )
    intro = flowing(intro_of(text_part(settings, environment, source)))
    assert intro == (
        "Lees het manifest (https://www.rvjeugdzorg.nl/manifest/), kijk op "
        "https://www.rvjeugdzorg.nl of mail rvjeugdzorg@loc.nl "
        "of de redactie (redactie@rvjeugdzorg.nl)."
    )


def test_raw_html_in_the_intro_is_shown_as_the_text_it_is(
    settings: Settings, environment: jinja2.Environment
) -> None:
    intro = intro_of(text_part(settings, environment, "Hallo <b>allemaal</b> & tot ziens."))
    assert intro == "Hallo <b>allemaal</b> & tot ziens."


LONG_URL = "https://www.rvjeugdzorg.nl/nieuws/" + "een-heel-lang-adres-van-een-artikel-" * 3 + "x/"


@pytest.mark.parametrize("padding", range(0, 72, 7))
def test_wrapping_never_splits_a_link_or_an_address(
    settings: Settings, environment: jinja2.Environment, padding: int
) -> None:
    words = " ".join(["woord"] * (padding // 6 + 1))
    source = (
        f"{words} mail naar ouders.en.jongeren@rvjeugdzorg.nl of lees "
        f"[het hele verhaal]({LONG_URL}) en ook {LONG_URL} of "
        f"<https://www.rvjeugdzorg.nl/praat-mee> als je wilt meepraten over de jeugdzorg."
    )
    intro = intro_of(text_part(settings, environment, source))
    lines = intro.split("\n")
    for whole in (
        "ouders.en.jongeren@rvjeugdzorg.nl",
        LONG_URL,
        "https://www.rvjeugdzorg.nl/praat-mee",
    ):
        assert any(whole in line for line in lines), (whole, lines)
    for line in lines:
        # A line is over 72 columns only when it holds one long link and nothing else.
        assert len(line) <= 72 or len(line.split()) == 1, line
    assert flowing(intro).count(LONG_URL) == 2


def test_the_readers_address_stands_on_a_labelled_line(
    settings: Settings, environment: jinja2.Environment
) -> None:
    recipient = replace(sample_recipient(settings), email="anouk.van.der.berg-jansen@example.org")
    text = text_part(settings, environment, "", recipient)
    lines = text.split("\n")
    assert "Aangemeld met: anouk.van.der.berg-jansen@example.org" in lines
    assert "anouk.van.der.berg-jansen@example.org" not in lines
    footer = text.rsplit("-" * 72, 1)[1]
    assert (
        "Je ontvangt deze nieuwsbrief omdat je je hebt aangemeld voor de nieuwsbrief van "
        "Radicale vernieuwing jeugdzorg." in flowing(footer)
    )
    assert re.search(rf"^Afmelden: {BASE_URL}/unsubscribe/", text, re.MULTILINE)
