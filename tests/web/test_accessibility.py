"""axe-core over every public page, in every state a visitor can reach, at phone and
desktop width: no violation of impact critical, serious or moderate.

The real server runs under uvicorn with aiosmtpd behind it (as in test_browser.py); the
browser context bypasses the pages' CSP so that axe can be injected. Pages are reached
as a visitor reaches them, by following the mails' links and pressing the buttons; the
steps check the HTTP status and the database, not the wording, which others may change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from newsletter.core.config import Settings
from tests.support.archive import add_edition
from tests.support.axe import AXE_MISSING, AXE_SCRIPT, Violation, at_least, report, run_axe
from tests.support.browser import CHROMIUM, new_context
from tests.support.clock import FixedClock
from tests.support.webharness import RunningSite, links_in, running_site, token_in

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
SIGNUP_LIMIT = 5
EDITION = "web version of an edition (/archive/N)"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
    pytest.mark.skipif(not AXE_SCRIPT.exists(), reason=AXE_MISSING),
]


@pytest.fixture
def site(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[RunningSite]:
    with running_site(make_settings, web={"signup_limit_per_ip": SIGNUP_LIMIT}) as running:
        add_edition(running.database, clock, "sent")
        yield running


class Walk:
    """A visitor's browser on the site, that runs axe on each page it is asked to."""

    def __init__(self, site: RunningSite, page: Any, width: str) -> None:
        self.site = site
        self.page = page
        self.width = width
        self.found: list[Violation] = []
        self.checked: list[str] = []

    def open(self, path_or_url: str, *, status: int = 200) -> None:
        url = path_or_url if "://" in path_or_url else self.site.base_url + path_or_url
        response = self.page.goto(url)
        assert response is not None and response.status == status, (url, response)

    def submit(self, button: str, *, status: int = 200) -> None:
        """Press `button` (a CSS selector) and wait for the page its form leads to."""
        with self.page.expect_navigation() as navigation:
            self.page.locator(button).click()
        response = navigation.value
        assert response is not None and response.status == status, (button, response)

    def check(self, name: str) -> None:
        self.checked.append(name)
        self.found.extend(run_axe(self.page, where=f"{name} at {self.width} width"))

    def status_of(self, email: str) -> str:
        status: str = self.site.people.show(email).subscriber.status
        return status


def sign_up_pages(walk: Walk, email: str) -> str:
    """The form, its errors, check-your-mail, confirm and confirmed; the confirmed page's
    link to the preferences."""
    walk.open("/subscribe")
    walk.check("sign-up form")
    walk.page.locator("#email").fill("geen-adres")
    walk.submit("form[action='/subscribe'] button[type=submit]", status=400)
    walk.check("sign-up form with errors")
    walk.page.locator("#email").fill(email)
    walk.submit("form[action='/subscribe'] button[type=submit]")
    walk.check("check your mail")
    assert walk.status_of(email) == "pending"

    message = walk.site.wait_for_mail(email)
    walk.open(link_in(message, "/confirm/"))
    walk.check("confirm (valid link)")
    walk.submit("form button[type=submit]")
    walk.check("confirmed")
    assert walk.status_of(email) == "confirmed"
    preferences = walk.page.locator("a[href*='/preferences/']").first.get_attribute("href")
    assert preferences is not None
    return str(preferences)


def subscriber_pages(walk: Walk, email: str, preferences: str) -> None:
    """Preferences (as opened, saved, with an error), a new address, and leaving."""
    walk.open(preferences)
    walk.check("preferences")
    walk.submit("button[value=save]")
    walk.check("preferences saved")
    walk.page.locator("#new_email").fill("geen-adres")
    walk.submit("button[value=change_email]", status=400)
    walk.check("preferences with an error")
    new_email = "nieuw-" + email
    walk.page.locator("#new_email").fill(new_email)
    walk.submit("button[value=change_email]")
    walk.check("address change sent")
    walk.open(link_in(walk.site.wait_for_mail(new_email), "/confirm/"))
    walk.check("confirm (new address)")

    view = walk.site.flows.subscriber_for(token_in(preferences), "preferences")
    assert view is not None
    walk.open(view.unsubscribe_url)
    walk.check("unsubscribe (valid link)")
    walk.submit("form[action*='/unsubscribe/'] button[type=submit]")
    walk.check("unsubscribed")
    assert walk.status_of(email) == "unsubscribed"
    walk.open(preferences)
    walk.check("preferences after leaving")


def refusal_pages(walk: Walk) -> None:
    """A link of no one, a page that does not exist, an expired form, too many sign-ups."""
    walk.open("/confirm/onbekend-of-verlopen", status=404)
    walk.check("unknown or expired link")
    walk.open("/unsubscribe/onbekend-of-verlopen", status=404)
    walk.check("unknown or expired unsubscribe link")
    walk.open("/bestaat-niet", status=404)
    walk.check("page not found (404)")

    walk.open("/subscribe")
    walk.page.context.clear_cookies()  # as when the browser refuses cookies
    walk.page.locator("#email").fill("zonder-cookie@example.org")
    walk.submit("form[action='/subscribe'] button[type=submit]", status=403)
    walk.check("problem page (expired form)")

    # Sign-ups from this one address until the limit answers; how many it takes is the
    # rate limiter's business.
    for attempt in range(SIGNUP_LIMIT + 2):
        walk.open("/subscribe")
        walk.page.locator("#email").fill(f"poging-{attempt}@example.org")
        with walk.page.expect_navigation() as navigation:
            walk.page.locator("form[action='/subscribe'] button[type=submit]").click()
        if navigation.value.status == 429:
            break
    else:
        pytest.fail(f"no 429 after {SIGNUP_LIMIT + 2} sign-ups from one address")
    walk.check("too many sign-ups (429)")


def archive_pages(walk: Walk) -> None:
    walk.open("/archive")
    walk.check("archive")
    walk.page.locator("ol a[href^='/archive/']").first.click()
    walk.page.wait_for_load_state()
    walk.check(EDITION)


def link_in(message: Any, path: str) -> str:
    return next(url for url in links_in(message) if path in url)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_public_page_passes_axe(site: RunningSite, browser: Any, width: str) -> None:
    context = new_context(browser, viewport=WIDTHS[width], bypass_csp=True)
    walk = Walk(site, context.new_page(), width)
    archive_pages(walk)
    preferences = sign_up_pages(walk, "lezer@example.org")
    subscriber_pages(walk, "lezer@example.org", preferences)
    refusal_pages(walk)
    context.close()

    assert len(set(walk.checked)) == 20  # every page, each once
    failing = at_least("moderate", walk.found)
    assert not failing, report(failing)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_web_version_of_an_edition_has_a_main_landmark(
    site: RunningSite, browser: Any, width: str
) -> None:
    """axe's landmark-one-main and region, which the web version failed once."""
    context = new_context(browser, viewport=WIDTHS[width], bypass_csp=True)
    page = context.new_page()
    page.goto(f"{site.base_url}/archive")
    page.locator("ol a[href^='/archive/']").first.click()
    page.wait_for_load_state()
    found = run_axe(page, where=f"{EDITION} at {width} width")
    context.close()
    landmarks = [v for v in found if v.rule in ("landmark-one-main", "region")]
    assert not landmarks, report(landmarks)
