"""The composed HTML in a real browser: what a reader on a phone or a desktop would check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.templating import template_environment
from newsletter.editions.compose import compose_edition, compose_web_version, sample_recipient
from tests.support.browser import CHROMIUM, LANDMARKS_SCRIPT, TEXT_STYLES_SCRIPT, new_context
from tests.support.colours import contrast_ratio, relative_luminance, rgb_to_hex
from tests.support.sample_edition import mail_settings, seed_edition

PHONE_WIDTH = 390
DESKTOP_WIDTH = 1200
# Dark in both modes: the header's teal; light in both: the buttons' terracotta.
HEADER = {"#1e4d4b"}
BUTTON = {"#b4451f"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]


@pytest.fixture(scope="module")
def edition_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed edition (no images, so nothing may load) filled for the sample reader."""
    folder = tmp_path_factory.mktemp("browser")
    settings = mail_settings(folder)
    mail = compose_edition(seed_edition(), settings, environment=template_environment(settings))
    assert mail is not None
    path = folder / "edition.html"
    path.write_text(mail.html_for(sample_recipient(settings)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def web_version_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed edition's public page (/archive/N), as the archive serves it."""
    folder = tmp_path_factory.mktemp("web-version")
    settings = mail_settings(folder)
    document = compose_web_version(
        seed_edition(), settings, environment=template_environment(settings)
    )
    path = folder / "web-version.html"
    path.write_text(document, encoding="utf-8")
    return path


class OpenedPage:
    def __init__(self, page: Any, requests: list[str]) -> None:
        self.page = page
        self.requests = requests


@pytest.fixture(params=[PHONE_WIDTH, DESKTOP_WIDTH], ids=["phone", "desktop"])
def opened(
    request: pytest.FixtureRequest, browser: Any, edition_file: Path
) -> Iterator[OpenedPage]:
    context = new_context(browser, viewport={"width": request.param, "height": 800})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda sent: requests.append(sent.url))
    page.goto(edition_file.as_uri())
    page.wait_for_load_state("networkidle")
    yield OpenedPage(page, requests)
    context.close()


def test_loading_the_mail_makes_no_request_at_all(opened: OpenedPage, edition_file: Path) -> None:
    assert opened.requests == [edition_file.as_uri()]


def test_no_sideways_scrolling_on_a_phone(browser: Any, edition_file: Path) -> None:
    context = new_context(browser, viewport={"width": PHONE_WIDTH, "height": 800})
    page = context.new_page()
    page.goto(edition_file.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    context.close()


def test_the_mail_is_at_most_600_pixels_wide_on_a_desktop(opened: OpenedPage) -> None:
    widths = opened.page.evaluate(
        "Array.from(document.querySelectorAll('h2'))"
        ".map((h) => h.closest('table').getBoundingClientRect().width)"
    )
    assert widths
    assert max(widths) <= 600


def test_the_page_is_dutch_and_titled(opened: OpenedPage) -> None:
    assert opened.page.evaluate("document.documentElement.lang") == "nl"
    assert opened.page.title() == seed_edition().subject


def test_reading_text_is_at_least_16_pixels(opened: OpenedPage) -> None:
    styles = opened.page.evaluate(TEXT_STYLES_SCRIPT)
    # Paragraphs without a class are reading text: the intro, excerpts and "Doe mee".
    excerpts = [s for s in styles if s["tag"] == "p" and not s["className"]]
    assert len(excerpts) >= 8
    for style in excerpts:
        assert style["fontSize"] >= 16, style
    # Labels, dates and the footer may be smaller, but never tiny.
    for style in styles:
        assert style["fontSize"] >= 14, style


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_visible_text_meets_wcag_aa_contrast(opened: OpenedPage, scheme: str) -> None:
    # Mail programs that follow the system's dark mode (Apple Mail, iOS, Outlook for
    # Mac) apply the mail's own dark styles: readable in both.
    opened.page.emulate_media(color_scheme=scheme)
    styles = opened.page.evaluate(TEXT_STYLES_SCRIPT)
    assert styles
    for style in styles:
        ratio = contrast_ratio(rgb_to_hex(style["color"]), rgb_to_hex(style["background"]))
        assert ratio >= 4.5, f"{scheme}: {style['text']!r}: {ratio:.2f}:1"


def test_in_dark_mode_the_mail_is_dark(opened: OpenedPage) -> None:
    def backgrounds() -> set[str]:
        styles = opened.page.evaluate(TEXT_STYLES_SCRIPT)
        return {rgb_to_hex(style["background"]) for style in styles}

    assert all(relative_luminance(colour) > 0.1 for colour in backgrounds() - HEADER)
    opened.page.emulate_media(color_scheme="dark")
    assert all(relative_luminance(colour) < 0.05 for colour in backgrounds() - BUTTON)


def test_buttons_are_easy_to_tap(opened: OpenedPage) -> None:
    boxes = opened.page.evaluate(
        "Array.from(document.querySelectorAll('a.button')).map((a) => {"
        " const box = a.getBoundingClientRect();"
        " return [box.width, box.height, a.getAttribute('aria-label')]; })"
    )
    assert len(boxes) == 6  # five articles and the platform
    for width, height, _ in boxes:
        assert height >= 40
        assert width >= 80
    labels = [label for _, _, label in boxes if label]
    assert labels[0] == "Lees verder: Wat als… ouders gewoon om hulp kunnen vragen?"


def test_the_footer_links_are_there_and_lead_somewhere(opened: OpenedPage) -> None:
    links = opened.page.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('a'))"
        ".map((a) => [a.textContent.trim(), a.href]))"
    )
    assert links["Afmelden"].endswith("/unsubscribe/voorbeeld-token")
    assert links["Voorkeuren aanpassen"].endswith("/preferences/voorbeeld-token")
    assert links["Bekijk in je browser"].endswith("/archive/12")
    assert links["rvjeugdzorg@loc.nl"] == "mailto:rvjeugdzorg@loc.nl"
    assert links["030 284 3200"] == "tel:+31302843200"


def landmarks_of(browser: Any, path: Path) -> dict[str, Any]:
    context = new_context(browser, viewport={"width": PHONE_WIDTH, "height": 800})
    page = context.new_page()
    page.goto(path.as_uri())
    found: dict[str, Any] = page.evaluate(LANDMARKS_SCRIPT)
    context.close()
    return found


def test_all_the_mails_text_is_in_one_main_landmark(browser: Any, edition_file: Path) -> None:
    # axe-core's landmark-one-main and region: a screen reader jumps to the main part.
    found = landmarks_of(browser, edition_file)
    assert found["mains"] == 1
    assert found["outside"] == []


def test_the_web_version_has_a_main_element(browser: Any, web_version_file: Path) -> None:
    found = landmarks_of(browser, web_version_file)
    assert found["mains"] == 1 and found["mainElements"] == 1
    assert found["outside"] == []
