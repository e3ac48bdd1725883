"""Staff edition work in headless Chromium (JavaScript off): plans, results, own items.

A staff member approves the draft without sending it, plans it for tomorrow at 09:00,
sees the plan on the review page and the dashboard; the job, run with a clock the test
controls, leaves it a minute early and sends it at its time; the results page counts
what went out. Another adds a hand-written item and finds it in the preview. A third
writes a one-off announcement, sends a test copy to herself, approves and sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from newsletter.content.ingest import fetch_all
from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.editions.drafting import draft_edition
from newsletter.editions.lifecycle import get_edition
from newsletter.jobs.job import run_job
from newsletter.jobs.report import RunReport
from newsletter.staff.accounts import add_user
from subscribers.consent import Requester
from tests.support.axe import AXE_MISSING, AXE_SCRIPT, at_least, report, run_axe
from tests.support.browser import CHROMIUM, new_context
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.waiting import wait_until
from tests.support.webharness import STAFF_PASSWORD, RunningSite, running_site

READERS = ("ouder@example.org", "jongere@example.org")
STAFF_EMAIL = "redactie@rvjeugdzorg.nl"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
    pytest.mark.skipif(not AXE_SCRIPT.exists(), reason=AXE_MISSING),
]


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[RunningSite]:
    with running_site(make_settings, feed={"urls": [str(SEEDS_FEED)]}) as running:
        with running.database.session() as session:
            add_user(session, "redactie", STAFF_PASSWORD, email=STAFF_EMAIL, now=utc_now())
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


def editions_to(site: RunningSite, address: str) -> list[Any]:
    return [
        item.message()
        for item in site.smtp.received
        if address in item.recipients and item.message()["List-Id"]
    ]


def edition_state(site: RunningSite) -> str:
    with site.database.session() as session:
        return get_edition(session, 1).state


def job_run(site: RunningSite, clock: FixedClock) -> RunReport:
    """`newsletter run` at the clock's time, in a thread of its own: the send runs an
    event loop, and Playwright's sync API holds one in the test's thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(
            run_job, site.settings, site.database, clock=clock, trigger="schedule", send=False
        ).result()


def log_in(page: Any, site: RunningSite, path: str) -> None:
    page.goto(f"{site.base_url}{path}")
    page.get_by_label("Naam").fill("redactie")
    page.get_by_label("Wachtwoord").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    assert page.url == f"{site.base_url}{path}"


def assert_no_serious_axe_violations(browser: Any, site: RunningSite, paths: list[str]) -> None:
    """axe on each page, at desktop and phone width; axe needs JavaScript, the pages not."""
    found = []
    for width in (1280, 390):
        context = new_context(browser, viewport={"width": width, "height": 900}, bypass_csp=True)
        page = context.new_page()
        log_in(page, site, paths[0])
        for path in paths:
            page.goto(f"{site.base_url}{path}")
            found += run_axe(page, where=f"{path} at {width}")
        context.close()
    serious = at_least("serious", found)
    assert serious == [], report(serious)


def test_plan_an_edition_and_see_it_go_out_when_the_clock_gets_there(
    site: RunningSite, browser: Any
) -> None:
    context = new_context(
        browser, viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    log_in(page, site, "/admin/editions/1")

    page.get_by_role("button", name="Goedkeuren, nog niet versturen").click()
    page.get_by_text("De editie is goedgekeurd.").wait_for()
    zone = ZoneInfo(site.settings.site.timezone)
    tomorrow = (utc_now().astimezone(zone) + timedelta(days=1)).date()
    page.get_by_label("Datum").fill(tomorrow.isoformat())
    page.get_by_label("Tijd").fill("09:00")
    page.get_by_role("button", name="Inplannen").click()
    page.get_by_text("De editie is ingepland.").wait_for()
    assert "ingepland door redactie" in page.get_by_text("Gepland: editie 1").inner_text()

    page.get_by_role("link", name="← Overzicht").click()
    assert "Editie 1:" in page.get_by_role("region", name="Ingepland").inner_text()
    assert_no_serious_axe_violations(browser, site, ["/admin/editions/1", "/admin"])

    # The job runs with a clock the test holds: a minute early, and at the time.
    when = datetime.combine(tomorrow, datetime.min.time().replace(hour=9), tzinfo=zone)
    clock = FixedClock(when - timedelta(minutes=1))
    early = job_run(site, clock)
    assert early.counts.planned == {}
    assert edition_state(site) == "approved"
    assert all(editions_to(site, reader) == [] for reader in READERS)
    clock.advance(minutes=1)
    on_time = job_run(site, clock)
    assert on_time.counts.planned == {"1": 2}
    assert edition_state(site) == "sent"
    for reader in READERS:
        assert len(editions_to(site, reader)) == 1

    # The job's clock, a day on, ended the session as idle: log in again to look.
    log_in(page, site, "/admin/editions/1")
    assert "Stand: verstuurd" in page.locator("p.lead").inner_text()
    page.get_by_role("link", name="Resultaten van deze editie").click()
    assert page.locator('td[data-count="sent"]').inner_text() == "2"
    assert page.locator('td[data-count="failed"]').inner_text() == "0"
    page.get_by_text("Geen problemen").wait_for()
    assert_no_serious_axe_violations(browser, site, ["/admin/editions/1/results"])
    context.close()


def test_add_a_hand_written_item_and_see_it_in_the_preview(site: RunningSite, browser: Any) -> None:
    context = new_context(
        browser, viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    log_in(page, site, "/admin/editions/1")
    page.get_by_label("Titel").fill("Actiedag 15 maart in Utrecht")
    page.get_by_label("Link").fill("https://www.rvjeugdzorg.nl/actiedag")
    page.get_by_label("Korte tekst").fill("Kom ook! We praten over jeugdzorg die werkt.")
    page.get_by_role("button", name="Bericht toevoegen").click()
    page.get_by_text("Het eigen bericht staat erin.").wait_for()
    frame = page.frame_locator('iframe[title="De mail op een computer"]')
    card = frame.get_by_role("link", name="Actiedag 15 maart in Utrecht", exact=True)
    assert card.get_attribute("href") == "https://www.rvjeugdzorg.nl/actiedag"
    assert (
        "Kom ook! We praten over jeugdzorg die werkt."
        in page.locator("pre.text-version").text_content()
    )
    assert_no_serious_axe_violations(browser, site, ["/admin/editions/1"])

    # A link that is not a web address is refused, in one line, and nothing is added.
    page.get_by_label("Titel").fill("Nog een")
    page.get_by_label("Link").fill("javascript:alert(1)")
    page.get_by_role("button", name="Bericht toevoegen").click()
    page.get_by_text("De link moet een webadres zijn").wait_for()
    assert page.get_by_role("button", name="Nog een weghalen").count() == 0

    page.get_by_role("button", name="Actiedag 15 maart in Utrecht weghalen").click()
    page.get_by_text("Het eigen bericht is uit deze editie gehaald.").wait_for()
    context.close()


def test_write_test_approve_and_send_an_announcement(site: RunningSite, browser: Any) -> None:
    context = new_context(
        browser, viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    log_in(page, site, "/admin")
    page.get_by_role("link", name="Nieuwe mededeling").click()
    assert page.url == f"{site.base_url}/admin/announcements/new"
    page.get_by_label("Onderwerp").fill("Actiedag 15 maart: doe je mee?")
    page.get_by_label("Tekst").fill("Op **15 maart** houden we een actiedag in Utrecht.")
    page.get_by_role("button", name="Opslaan en bekijken").click()
    assert page.url == f"{site.base_url}/admin/editions/2"
    frame = page.frame_locator('iframe[title="De mail op een computer"]')
    assert "15 maart" in frame.locator("strong").first.inner_text()

    page.get_by_label("Stuur de mail als test naar").select_option(STAFF_EMAIL)
    page.get_by_role("button", name="Testmail versturen").click()
    page.get_by_text("De testmail is verstuurd.").wait_for()
    [test_copy] = [item.message() for item in site.smtp.received if STAFF_EMAIL in item.recipients]
    assert "Actiedag 15 maart" in test_copy["Subject"]

    page.get_by_label("Ja, verstuur editie 2 nu naar 2 abonnees.").check()
    page.get_by_role("button", name="Goedkeuren en versturen").click()
    done = page.get_by_text("Klaar: 2 verstuurd, 0 mislukt.")

    def finished() -> bool:
        if done.count():
            return True
        page.get_by_role("link", name="Ververs").click()  # as the person does, now and then
        return False

    wait_until(finished, what="the progress page to say the send is done")
    for reader in READERS:
        [mail] = editions_to(site, reader)
        assert mail["Subject"] == "Actiedag 15 maart: doe je mee?"
        html_part = mail.get_body(("html",))
        assert html_part is not None and "<strong>15 maart</strong>" in html_part.get_content()
    assert edition_state(site) == "draft"  # the digest (edition 1) is still there to review
    assert_no_serious_axe_violations(
        browser,
        site,
        ["/admin/announcements/new", "/admin", "/admin/editions/2", "/admin/editions/2/results"],
    )
    context.close()
