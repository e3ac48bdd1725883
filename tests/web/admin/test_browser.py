"""The staff's review flow in headless Chromium, against the real server and aiosmtpd.

Log in, open the draft, change the intro, send a test to yourself and read it, approve,
watch the send finish, and find the edition in the public archive. JavaScript is off:
the staff pages need none (the progress page refreshes when the person presses Ververs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from newsletter.content.ingest import fetch_all
from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.editions.drafting import draft_edition
from newsletter.staff.accounts import add_user
from subscribers.consent import Requester
from tests.support.browser import CHROMIUM, new_context
from tests.support.paths import SEEDS_FEED
from tests.support.waiting import wait_until
from tests.support.webharness import RunningSite, running_site

PASSWORD = "een lang genoeg wachtwoord"
STAFF_EMAIL = "redactie@rvjeugdzorg.nl"
READERS = ("ouder@example.org", "jongere@example.org", "jeugdwerker@example.org")
INTRO = "Deze week: **kampvuurgesprekken** in het hele land."

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[RunningSite]:
    with running_site(make_settings, feed={"urls": [str(SEEDS_FEED)]}) as running:
        with running.database.session() as session:
            add_user(session, "redactie", PASSWORD, email=STAFF_EMAIL, now=utc_now())
        for address in READERS:
            running.people.add(
                address,
                name=None,
                themes=[],
                requester=Requester(source="cli"),
                confirmed=True,
                consent_note="signed up on paper",
            )
        fetch_all(running.settings, running.database, clock=utc_now)
        assert draft_edition(running.settings, running.database, clock=utc_now).number == 1
        yield running


def newsletters_to(site: RunningSite, address: str) -> list[Any]:
    return [
        item.message()
        for item in site.smtp.received
        if address in item.recipients and item.message()["List-Id"]
    ]


def test_review_test_approve_send_and_archive_in_a_real_browser(
    site: RunningSite, browser: Any
) -> None:
    context = new_context(
        browser, viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(site.base_url) else elsewhere.append(request.url)
        ),
    )

    # The staff pages lead to the login first, and back after it.
    page.goto(f"{site.base_url}/admin/editions/1")
    assert page.url.startswith(f"{site.base_url}/admin/login")
    page.get_by_label("Naam").fill("redactie")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    assert page.url == f"{site.base_url}/admin/editions/1"

    # Change the intro; both frames show the new text.
    page.get_by_role("textbox", name="Inleiding").fill(INTRO)
    page.get_by_role("button", name="Opslaan").click()
    page.get_by_text("De wijzigingen zijn opgeslagen.").wait_for()
    for title in ("De mail op een computer", "De mail op een telefoon"):
        frame = page.frame_locator(f'iframe[title="{title}"]')
        assert "kampvuurgesprekken" in frame.locator(".intro").inner_text()

    # A test copy to myself, read from the SMTP server.
    page.get_by_label("Stuur de mail als test naar").select_option(STAFF_EMAIL)
    page.get_by_role("button", name="Testmail versturen").click()
    page.get_by_text("De testmail is verstuurd.").wait_for()
    [test_copy] = [item.message() for item in site.smtp.received if STAFF_EMAIL in item.recipients]
    assert "TEST" in test_copy["Subject"].upper()
    html_part = test_copy.get_body(("html",))
    assert html_part is not None
    assert "<strong>kampvuurgesprekken</strong>" in html_part.get_content()
    assert all(newsletters_to(site, reader) == [] for reader in READERS)

    # Approve and send; the progress page shows the end once Ververs is pressed after it.
    page.get_by_label("Ja, verstuur editie 1 nu naar 3 abonnees.").check()
    page.get_by_role("button", name="Goedkeuren en versturen").click()
    assert page.url == f"{site.base_url}/admin/editions/1/progress"
    done = page.get_by_text("Klaar: 3 verstuurd, 0 mislukt.")

    def finished() -> bool:
        if done.count():
            return True
        page.get_by_role("link", name="Ververs").click()  # as the person does, now and then
        return False

    wait_until(finished, what="the progress page to say the send is done")
    assert page.locator('td[data-state="sent"]').inner_text() == "3"
    for reader in READERS:
        assert len(newsletters_to(site, reader)) == 1

    # The archive has it, without anything personal.
    page.get_by_role("link", name="Bekijk de editie in het archief").click()
    assert page.url == f"{site.base_url}/archive/1"
    body = page.content()
    assert "kampvuurgesprekken" in body
    assert "/unsubscribe/" not in body and "/preferences/" not in body
    page.goto(f"{site.base_url}/archive")
    assert page.locator('a[href="/archive/1"]').count() >= 1
    # Nothing but the site itself and the movement's own website (article images).
    website = site.settings.site.website_url
    assert [url for url in elsewhere if not url.startswith(website)] == []
    context.close()
