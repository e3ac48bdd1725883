"""Staff accounts and the dashboard in headless Chromium with JavaScript off, against the
real server and aiosmtpd: an admin invites a colleague, who sets a password with the
mailed link and logs in; the link then no longer works; the colleague changes their
password and gets 403 on the admin's page; the dashboard shows its warnings and chart.
axe checks every one of these pages at desktop and phone width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from newsletter.content.ingest import fetch_all
from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.editions.drafting import draft_edition
from newsletter.jobs.runs import Run
from newsletter.staff.accounts import add_user
from subscribers.consent import Requester
from subscribers.management import ListManagement
from tests.support.axe import AXE_MISSING, AXE_SCRIPT, at_least, report, run_axe
from tests.support.browser import CHROMIUM, new_context
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.webharness import RunningSite, links_in, running_site

ADMIN_PASSWORD = "een lang genoeg wachtwoord"
COLLEAGUE_PASSWORD = "mijn eigen lange zin"
NEWER_PASSWORD = "en nu een nog nieuwere zin"
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}

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
            add_user(session, "redactie", ADMIN_PASSWORD, email=None, now=utc_now())
        yield running


def log_in(page: Any, base_url: str, name: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login")
    page.get_by_label("Naam").fill(name)
    page.get_by_label("Wachtwoord").fill(password)
    page.get_by_role("button", name="Inloggen").click()


def set_new_password(page: Any, password: str) -> None:
    page.get_by_label("Nieuw wachtwoord", exact=True).fill(password)
    page.get_by_label("Nieuw wachtwoord nog een keer").fill(password)


def invitation_path(site: RunningSite, address: str) -> str:
    mail = site.wait_for_mail(address)
    url = next(url for url in links_in(mail) if "/admin/welcome/" in url)
    return url.removeprefix(site.base_url)


def test_an_admin_invites_a_colleague_who_sets_a_password_and_logs_in(
    site: RunningSite, browser: Any
) -> None:
    options = {"viewport": WIDTHS["desktop"], "java_script_enabled": False}
    admin = new_context(browser, **options).new_page()
    log_in(admin, site.base_url, "redactie", ADMIN_PASSWORD)
    admin.get_by_role("link", name="Collega's").click()
    assert admin.url == f"{site.base_url}/admin/staff"
    admin.get_by_label("Naam om in te loggen").fill("anouk")
    admin.get_by_label("E-mailadres").fill("anouk@example.org")
    admin.get_by_label("Redacteur").check()
    admin.get_by_role("button", name="Toevoegen en link mailen").click()
    admin.get_by_text("anouk is toegevoegd en krijgt een mail").wait_for()

    # The colleague, in a browser of their own, opens the link from the mail.
    path = invitation_path(site, "anouk@example.org")
    colleague = new_context(browser, **options).new_page()
    colleague.goto(site.base_url + path)
    colleague.get_by_text("Je naam om in te loggen is anouk").wait_for()
    set_new_password(colleague, COLLEAGUE_PASSWORD)
    colleague.get_by_role("button", name="Wachtwoord opslaan").click()
    colleague.get_by_text("Je wachtwoord is opgeslagen").wait_for()
    log_in(colleague, site.base_url, "anouk", COLLEAGUE_PASSWORD)
    assert colleague.url == f"{site.base_url}/admin"

    # The link worked once.
    answer = colleague.goto(site.base_url + path)
    assert answer is not None and answer.status == 404
    colleague.get_by_role("heading", name="Deze link werkt niet meer").wait_for()

    # An editor may not open the admin's page.
    answer = colleague.goto(f"{site.base_url}/admin/staff")
    assert answer is not None and answer.status == 403
    colleague.get_by_role("heading", name="Alleen voor beheerders").wait_for()

    # The colleague changes their own password, and logs in with the new one.
    colleague.goto(f"{site.base_url}/admin")
    colleague.get_by_role("link", name="Mijn account").click()
    colleague.get_by_label("Huidig wachtwoord").fill(COLLEAGUE_PASSWORD)
    set_new_password(colleague, NEWER_PASSWORD)
    colleague.get_by_role("button", name="Wachtwoord wijzigen").click()
    colleague.get_by_text("Je wachtwoord is gewijzigd.").wait_for()
    colleague.get_by_role("button", name="Uitloggen (anouk)").click()
    log_in(colleague, site.base_url, "anouk", COLLEAGUE_PASSWORD)
    colleague.get_by_text("De naam of het wachtwoord klopt niet.").wait_for()
    log_in(colleague, site.base_url, "anouk", NEWER_PASSWORD)
    assert colleague.url == f"{site.base_url}/admin"

    # The admin sees who logged in.
    admin.goto(f"{site.base_url}/admin/staff")
    history = admin.locator("#logins").locator("..").inner_text()
    assert "anouk" in history and "nee, verkeerd wachtwoord of naam" in history


def a_troubled_list(site: RunningSite) -> None:
    """Through the library, with a FixedClock in the past: people who joined 20 weeks
    ago, one who left 3 weeks ago, a draft waiting 3 days, a run 8 days ago that set a
    returned mail aside (and none since)."""
    now = utc_now()
    clock = FixedClock(now - timedelta(weeks=20))
    people = ListManagement(site.settings, site.database, clock=clock)
    for address in ("ouder@example.org", "jongere@example.org", "werker@example.org"):
        people.add(
            address,
            name=None,
            themes=[],
            requester=Requester(source="cli"),
            confirmed=True,
            consent_note="papieren lijst actiedag",
        )
    clock.now = now - timedelta(weeks=3)
    people.remove("werker@example.org", Requester(source="cli"))
    clock.now = now - timedelta(days=3)
    fetch_all(site.settings, site.database, clock=clock)
    assert draft_edition(site.settings, site.database, clock=clock).number == 1
    started = now - timedelta(days=8)
    with site.database.session() as session:
        session.add(
            Run(
                started_at=started,
                finished_at=started,
                trigger="schedule",
                outcome="ok",
                counts={"returned_unknown": 1},
                error=None,
            )
        )


def test_the_dashboard_shows_its_warnings_and_the_growth_chart(
    site: RunningSite, browser: Any
) -> None:
    a_troubled_list(site)
    page = new_context(browser, viewport=WIDTHS["phone"], java_script_enabled=False).new_page()
    log_in(page, site.base_url, "redactie", ADMIN_PASSWORD)
    warnings = page.locator("section", has=page.locator("#attention")).inner_text()
    assert "De planner heeft niet gedraaid." in warnings
    assert "Editie 1 wacht al 3 dagen op goedkeuring." in warnings
    assert "1 teruggekomen mail is sinds" in warnings
    page.get_by_text("De ronde draait elke dinsdag om 09:00.").wait_for()
    line = page.get_by_role("img", name="Ingeschreven abonnees aan het eind van elke week")
    assert line.count() == 1
    flows = page.get_by_role("img", name="Aanmeldingen, bevestigingen en vertrekkers")
    assert flows.count() == 1
    page.get_by_text("Nu 2 ingeschreven abonnees; een jaar geleden 0.").wait_for()
    assert "Vertrekkers: 1 dit jaar" in flows.inner_html()
    page.get_by_text("De cijfers per week").click()  # a <details>: no script needed
    assert page.get_by_role("region", name="De cijfers per week").is_visible()
    page.get_by_text("weten we niet: dat houden we bewust niet bij").wait_for()
    # At phone width, the warnings and the growth fit the screen (the figures per week
    # scroll inside their own region).
    wide = page.evaluate(
        """() => [...document.querySelectorAll('#attention ~ *, #growth ~ *, #growth ~ * *')]
        .filter((e) => !e.closest('.table-scroll'))
        .filter((e) => e.getBoundingClientRect().right > 390)
        .map((e) => e.tagName)"""
    )
    assert wide == []


@pytest.mark.skipif(not AXE_SCRIPT.exists(), reason=AXE_MISSING)
@pytest.mark.parametrize("width", WIDTHS)
def test_the_new_staff_pages_pass_axe(site: RunningSite, browser: Any, width: str) -> None:
    a_troubled_list(site)
    with site.database.session() as session:
        add_user(session, "lotte", COLLEAGUE_PASSWORD, email=None, now=utc_now(), role="editor")
    context = new_context(browser, viewport=WIDTHS[width], bypass_csp=True)
    page = context.new_page()
    found = []

    def check(name: str) -> None:
        found.extend(run_axe(page, where=f"{name} at {width} width"))

    log_in(page, site.base_url, "redactie", ADMIN_PASSWORD)
    check("dashboard with warnings and chart")
    page.goto(f"{site.base_url}/admin/account")
    check("my account")
    page.goto(f"{site.base_url}/admin/staff")
    page.get_by_label("Naam om in te loggen").fill("sem")
    page.get_by_label("E-mailadres").fill("sem@example.org")
    page.get_by_role("button", name="Toevoegen en link mailen").click()
    check("colleagues, after an invitation")
    page.get_by_role("button", name="Toevoegen en link mailen").click()
    check("colleagues, with an error")
    path = invitation_path(site, "sem@example.org")
    guest = context.new_page()
    guest.goto(site.base_url + path)
    found.extend(run_axe(guest, where=f"invitation link at {width} width"))
    guest.goto(f"{site.base_url}/admin/welcome/not-a-link")
    found.extend(run_axe(guest, where=f"dead invitation link at {width} width"))
    editor = new_context(browser, viewport=WIDTHS[width], bypass_csp=True).new_page()
    log_in(editor, site.base_url, "lotte", COLLEAGUE_PASSWORD)
    editor.goto(f"{site.base_url}/admin/staff")
    found.extend(run_axe(editor, where=f"403 for an editor at {width} width"))
    context.close()

    failing = at_least("moderate", found)  # stricter than asked: none of serious or worse
    assert not failing, report(failing)


def test_a_strangers_wrong_guesses_do_not_lock_out_the_right_person(
    make_settings: Callable[..., Settings], browser: Any
) -> None:
    # Behind a proxy on this machine, each browser says which address it comes from.
    sections: dict[str, Any] = {"web": {"trusted_proxies": ["127.0.0.1"], "login_limit": 3}}
    with running_site(make_settings, **sections) as running:
        with running.database.session() as session:
            add_user(session, "redactie", ADMIN_PASSWORD, email=None, now=utc_now())

        def browser_from(address: str) -> Any:
            return new_context(
                browser,
                viewport=WIDTHS["phone"],
                java_script_enabled=False,
                extra_http_headers={"X-Forwarded-For": address},
            ).new_page()

        stranger = browser_from("203.0.113.66")
        for _ in range(3):
            log_in(stranger, running.base_url, "redactie", "zomaar een gok erbij")
            stranger.get_by_text("De naam of het wachtwoord klopt niet.").wait_for()
        # The stranger's own computer is stopped now, and told for how long.
        log_in(stranger, running.base_url, "redactie", "nog een gok erachteraan")
        stranger.get_by_text("Probeer het over 15 minuten opnieuw.").wait_for()
        # The right person, on their own computer, gets in at once.
        colleague = browser_from("198.51.100.7")
        log_in(colleague, running.base_url, "redactie", ADMIN_PASSWORD)
        assert colleague.url == f"{running.base_url}/admin"
