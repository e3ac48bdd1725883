"""Sign up, confirm and leave in headless Chromium, against the real server and aiosmtpd.

The app runs under uvicorn on 127.0.0.1 (as `newsletter serve` runs it), mailing through
a real SMTP server; the browser has JavaScript switched off, as the pages need none.
Set NEWSLETTER_UPDATE_SCREENSHOTS=1 to write docs/screenshots/subscribe-phone.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import Settings
from tests.support.browser import CHROMIUM, TEXT_STYLES_SCRIPT, new_context
from tests.support.colours import contrast_ratio, rgb_to_hex
from tests.support.paths import ROOT
from tests.support.webharness import RunningSite, links_in, running_site, token_in

PHONE = {"width": 390, "height": 844}
SCREENSHOT = ROOT / "docs" / "screenshots" / "subscribe-phone.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[RunningSite]:
    with running_site(make_settings) as running:
        yield running


def status_of(site: RunningSite, email: str) -> str:
    status: str = site.people.show(email).subscriber.status
    return status


def test_sign_up_confirm_and_leave_in_a_real_browser(
    site: RunningSite, browser: Any, tmp_path: Path
) -> None:
    context = new_context(browser, viewport=PHONE, device_scale_factor=2, java_script_enabled=False)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.goto(f"{site.base_url}/")  # the root leads to the form
    assert page.url == f"{site.base_url}/subscribe"
    page.get_by_label("E-mailadres").fill("ouder@example.org")
    page.get_by_label("Je naam").fill("Sanne")
    page.get_by_label("Kampvuurgesprekken").check()
    shot = tmp_path / "subscribe-phone.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("NEWSLETTER_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, SCREENSHOT)

    page.get_by_role("button", name="Aanmelden").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Kijk in je mailbox"
    assert status_of(site, "ouder@example.org") == "pending"

    message = site.wait_for_mail("ouder@example.org")
    confirm_url = next(url for url in links_in(message) if "/confirm/" in url)
    page.goto(confirm_url)
    assert page.get_by_role("heading", level=1).inner_text() == "Aanmelding bevestigen"
    assert status_of(site, "ouder@example.org") == "pending"  # opening the link is not enough
    page.get_by_role("button", name="Aanmelding bevestigen").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Gelukt, je bent aangemeld"
    assert "Kampvuurgesprekken" in page.content()
    assert status_of(site, "ouder@example.org") == "confirmed"
    assert site.people.show("ouder@example.org").subscriber.name == "Sanne"

    preferences_url = page.get_by_role("link", name="Voorkeuren aanpassen").get_attribute("href")
    assert preferences_url is not None
    view = site.flows.subscriber_for(token_in(preferences_url), "preferences")
    assert view is not None
    page.goto(view.unsubscribe_url)
    assert page.get_by_role("heading", level=1).inner_text() == "Afmelden"
    assert status_of(site, "ouder@example.org") == "confirmed"
    page.get_by_role("button", name="Afmelden").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Je bent afgemeld"
    assert status_of(site, "ouder@example.org") == "unsubscribed"

    # Nothing was ever asked of another host, and the one cookie is the CSRF cookie.
    assert requests
    assert all(url.startswith(site.base_url + "/") for url in requests), requests
    assert [cookie["name"] for cookie in context.cookies()] == ["csrf"]
    context.close()


def test_the_form_reads_well_on_a_phone(site: RunningSite, browser: Any) -> None:
    context = new_context(browser, viewport=PHONE)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.goto(f"{site.base_url}/subscribe")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert problems == []  # no CSP violations, no missing files

    styles = page.evaluate(TEXT_STYLES_SCRIPT)
    assert styles
    for style in styles:
        ratio = contrast_ratio(rgb_to_hex(style["color"]), rgb_to_hex(style["background"]))
        assert ratio >= 4.5, f"{style['text']!r}: {ratio:.2f}:1"
        assert style["fontSize"] >= 15, style

    button = page.get_by_role("button", name="Aanmelden").bounding_box()
    assert button is not None and button["height"] >= 44
    assert (
        page.evaluate("getComputedStyle(document.querySelector('button')).backgroundColor")
        == "rgb(180, 69, 31)"
    )
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.site-header')).backgroundColor")
        == "rgb(30, 77, 75)"
    )
    context.close()


def test_the_keyboard_reaches_every_field_but_never_the_honeypot(
    site: RunningSite, browser: Any
) -> None:
    context = new_context(browser, viewport=PHONE)
    page = context.new_page()
    page.goto(f"{site.base_url}/subscribe")
    reached = []
    for _ in range(20):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert "opmerking" not in reached
    assert {"email", "name", "theme-doe-je-mee"} <= set(reached)
    assert "BUTTON" in reached
    honeypot = page.locator("#opmerking").bounding_box()
    assert honeypot is not None and honeypot["x"] < -1000
    # Focus is visible: a 3px outline on the focused field.
    page.focus("#email")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineWidth") == "3px"
    context.close()
