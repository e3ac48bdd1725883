"""The review page in headless Chromium with JavaScript off, on a phone, as staff use it:
skip past the previews, fold them, and stay at the article after moving or removing it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.editions.lifecycle import get_edition
from newsletter.staff.accounts import add_user
from tests.support.archive import add_edition
from tests.support.browser import CHROMIUM, new_context
from tests.support.clock import FixedClock
from tests.support.webharness import STAFF_NAME, STAFF_PASSWORD, RunningSite, running_site

PHONE = {"width": 390, "height": 844}
TITLES = (
    "Ouders aan het woord",
    "Actiedag in Utrecht",
    "Jongeren schrijven de minister",
    "Nieuwe cijfers over wachtlijsten",
)
# Where an element is, against the window: whether its start is in view (within a pixel,
# as layout rounds; a row may be taller than a phone's screen), after the page scrolled.
IN_VIEW_SCRIPT = """
(selector) => {
  const box = document.querySelector(selector).getBoundingClientRect();
  const inView = box.top >= -1 && box.top < innerHeight;
  return { scrolled: window.scrollY > 0, inView: inView, top: box.top, y: window.scrollY };
}
"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]


@pytest.fixture
def site(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[RunningSite]:
    with running_site(make_settings) as running:
        with running.database.session() as session:
            add_user(session, STAFF_NAME, STAFF_PASSWORD, email=None, now=clock())
        assert add_edition(running.database, clock, "draft", titles=TITLES) == 1
        yield running


def article_ids(site: RunningSite) -> list[int]:
    with site.database.session() as session:
        return [entry.article_id for entry in get_edition(session, 1).entries]


def assert_in_view(page: Any, selector: str) -> None:
    page.wait_for_load_state("load")  # the previews' frames are laid out
    place = page.evaluate(IN_VIEW_SCRIPT, selector)
    assert (place["scrolled"], place["inView"]) == (True, True), (selector, place)


def test_staff_skip_fold_and_stay_at_the_article_on_a_phone(
    site: RunningSite, browser: Any
) -> None:
    context = new_context(browser, viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.base_url}/admin/editions/1")
    page.get_by_label("Naam").fill(STAFF_NAME)
    page.get_by_label("Wachtwoord").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    review = f"{site.base_url}/admin/editions/1"
    assert page.url == review

    # Past the two previews, straight to the form.
    page.get_by_role("link", name="Sla de voorbeelden over").click()
    assert page.url == review + "#text"
    assert_in_view(page, "#text")

    # The previews fold away, and open again.
    phone_frame = page.locator("iframe[title='De mail op een telefoon']")
    assert phone_frame.is_visible()
    page.locator("summary", has_text="Voorbeelden op computer en telefoon").click()
    assert phone_frame.is_hidden()
    page.locator("summary", has_text="Voorbeelden op computer en telefoon").click()
    assert phone_frame.is_visible()

    # Move the second article down: the page comes back at it, with the notice beside it.
    first, second, third, fourth = article_ids(site)
    page.get_by_role("button", name=f"{TITLES[1]} omlaag").click()
    assert page.url == review + f"?done=moved#artikel-{second}"
    assert article_ids(site) == [first, third, second, fourth]
    assert_in_view(page, f"#artikel-{second}")
    assert page.get_by_text("De volgorde is aangepast.").is_visible()

    # Take the third out: the page comes back at the one that took its place.
    page.get_by_role("button", name=f"{TITLES[2]} weghalen").click()
    assert page.url == review + f"?done=removed#artikel-{second}"
    assert article_ids(site) == [first, second, fourth]
    assert_in_view(page, f"#artikel-{second}")
    assert page.get_by_text("Het artikel is uit deze editie gehaald.").is_visible()
    context.close()
