"""The short mails to one person (confirmation, address change, already subscribed, probe)
in a real browser: one main landmark, readable in light and dark mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.returns.probes import probe_mail
from subscribers.mails import SubscriberMails
from subscribers.models import Subscriber
from tests.support.browser import CHROMIUM, LANDMARKS_SCRIPT, TEXT_STYLES_SCRIPT, new_context
from tests.support.colours import contrast_ratio, relative_luminance, rgb_to_hex
from tests.support.sample_edition import BASE_URL

# Dark in both modes: the header's teal; light in both: the buttons' terracotta.
HEADER = {"#1e4d4b"}
BUTTON = {"#b4451f"}
EMAIL = "anouk@example.org"
CONFIRM_URL = f"{BASE_URL}/confirm/bevestig-token"
PREFERENCES_URL = f"{BASE_URL}/preferences/voorkeuren-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]

# Every short mail to subscribers, by name: its HTML as composed from the settings.
MAILS: dict[str, Callable[[Settings], str]] = {
    "confirmation": lambda settings: (
        SubscriberMails(settings)
        .confirmation(EMAIL, confirm_url=CONFIRM_URL, themes=list(settings.themes)[:2])
        .html
    ),
    "address change": lambda settings: (
        SubscriberMails(settings).address_change(EMAIL, confirm_url=CONFIRM_URL).html
    ),
    "already subscribed": lambda settings: (
        SubscriberMails(settings).already_subscribed(EMAIL, preferences_url=PREFERENCES_URL).html
    ),
    "probe": lambda settings: (
        probe_mail(settings, Subscriber(email=EMAIL, public_id="p" * 22)).html
    ),
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(site={"base_url": BASE_URL})


def mail_file(tmp_path: Path, settings: Settings, mail: str) -> Path:
    path = tmp_path / "mail.html"
    path.write_text(MAILS[mail](settings), encoding="utf-8")
    return path


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = new_context(browser, viewport={"width": 390, "height": 800})
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("mail", MAILS)
def test_all_the_text_is_in_one_main_landmark(
    mail: str, page: Any, settings: Settings, tmp_path: Path
) -> None:
    page.goto(mail_file(tmp_path, settings, mail).as_uri())
    found = page.evaluate(LANDMARKS_SCRIPT)
    assert found["mains"] == 1
    assert found["outside"] == []


@pytest.mark.parametrize("mail", MAILS)
def test_the_mail_offers_light_and_dark(mail: str, settings: Settings) -> None:
    document = MAILS[mail](settings)
    assert '<meta name="color-scheme" content="light dark">' in document
    assert '<meta name="supported-color-schemes" content="light dark">' in document
    assert "@media (prefers-color-scheme: dark)" in document


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("mail", MAILS)
def test_every_visible_text_meets_wcag_aa_contrast(
    mail: str, scheme: str, page: Any, settings: Settings, tmp_path: Path
) -> None:
    page.emulate_media(color_scheme=scheme)
    page.goto(mail_file(tmp_path, settings, mail).as_uri())
    styles = page.evaluate(TEXT_STYLES_SCRIPT)
    assert len(styles) >= 5
    for style in styles:
        ratio = contrast_ratio(rgb_to_hex(style["color"]), rgb_to_hex(style["background"]))
        assert ratio >= 4.5, f"{scheme}: {style['text']!r}: {ratio:.2f}:1"


@pytest.mark.parametrize("mail", MAILS)
def test_in_dark_mode_the_mail_is_dark(
    mail: str, page: Any, settings: Settings, tmp_path: Path
) -> None:
    def backgrounds() -> set[str]:
        return {rgb_to_hex(style["background"]) for style in page.evaluate(TEXT_STYLES_SCRIPT)}

    page.goto(mail_file(tmp_path, settings, mail).as_uri())
    assert all(relative_luminance(colour) > 0.1 for colour in backgrounds() - HEADER)
    page.emulate_media(color_scheme="dark")
    assert all(relative_luminance(colour) < 0.05 for colour in backgrounds() - BUTTON)
