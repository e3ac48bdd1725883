"""axe-core over every staff page, at desktop and phone width: no violation of impact
critical or serious, no page wider than a phone, and no address squeezed into a column a
few letters wide.

The pages come from the app's own routes: every GET route under /admin is visited, those
with a path parameter with a real edition or person, so a new page cannot be forgotten.
Staff log in with JavaScript off (the pages need none); axe is a script, and Chromium
with scripts off never finishes its run, so the checks run in a second context that
carries the session cookie, with scripts on and the pages' CSP bypassed for axe only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI

from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.delivery.send import prepare_send, send_edition
from newsletter.staff.accounts import add_user
from newsletter.staff.invitations import invite
from newsletter.web.app import include_routers
from subscribers.consent import Requester
from tests.support.archive import add_edition
from tests.support.axe import (
    AXE_MISSING,
    AXE_SCRIPT,
    Violation,
    at_least,
    by_impact,
    report,
    run_axe,
)
from tests.support.browser import CHROMIUM, new_context
from tests.support.clock import FixedClock
from tests.support.webharness import (
    STAFF_NAME,
    STAFF_PASSWORD,
    RunningSite,
    api_routes,
    running_site,
)

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
PHONE_WIDTH = WIDTHS["phone"]["width"]
LONG_ADDRESS = "jeugdwerker.met.een.heel.lang.adres@gemeente-voorbeeldstad.example.org"
READERS = (LONG_ADDRESS, "ouder@example.org", "jongere@example.org")
TITLES = (
    "Ouders aan het woord over wachtlijsten in de jeugdzorg",
    "Actiedag in Utrecht: doe je mee op 15 maart?",
    "Jongeren schrijven een brief aan de minister",
)
# Pages that are not HTML for a person to read.
NOT_A_PAGE = ("/admin/subscribers/export.csv",)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
    pytest.mark.skipif(not AXE_SCRIPT.exists(), reason=AXE_MISSING),
]

# What a phone shows: how wide the document is, and every element holding an address
# (text with an @) that is narrower than about six characters.
LAYOUT_SCRIPT = """
() => {
  const squeezed = [];
  for (const el of document.querySelectorAll('td, th, li, dd, p, span, a, h1, code')) {
    const own = Array.from(el.childNodes)
      .filter((node) => node.nodeType === Node.TEXT_NODE)
      .map((node) => node.textContent.trim()).join('');
    if (!/\\S@\\S/.test(own)) continue;
    const fontSize = parseFloat(getComputedStyle(el).fontSize);
    const width = el.getBoundingClientRect().width;
    if (width < 6 * 0.55 * fontSize) squeezed.push(`${el.tagName}: ${own.slice(0, 40)}`);
  }
  return { width: document.documentElement.scrollWidth, squeezed: squeezed };
}
"""


@dataclass
class AdminSite:
    running: RunningSite
    sent: int
    sending: int
    draft: int
    person: str
    invitation: str


@pytest.fixture
def site(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[AdminSite]:
    with running_site(make_settings, schedule={"staff": ["hoofdredactie@rvjeugdzorg.nl"]}) as run:
        with run.database.session() as session:
            add_user(
                session, STAFF_NAME, STAFF_PASSWORD, email="redactie@rvjeugdzorg.nl", now=clock()
            )
        for address in READERS:
            run.people.add(
                address,
                name="Marieke van den Berg-Hoogendoorn",
                themes=[],
                requester=Requester(source="cli"),
                confirmed=True,
                consent_note="papieren lijst actiedag 15 maart",
            )
        sent = add_edition(run.database, clock, "approved", titles=TITLES)
        # In a thread of its own: the send runs an event loop, and Playwright's runs here.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(send_edition, run.settings, run.database, sent, clock=utc_now).result()
        draft = add_edition(
            run.database, clock, "draft", titles=TITLES, intro_markdown="Beste allemaal,"
        )
        sending = add_edition(run.database, clock, "approved", titles=TITLES[:1])
        prepare_send(run.settings, run.database, sending, now=utc_now())  # started elsewhere
        person = run.people.show(LONG_ADDRESS).subscriber.public_id
        with run.database.session() as session:
            invitation = invite(
                session, "collega", email="collega@rvjeugdzorg.nl", role="editor", now=utc_now()
            ).token
        yield AdminSite(
            run, sent=sent, sending=sending, draft=draft, person=person, invitation=invitation
        )


def admin_get_routes() -> list[str]:
    """Every GET route under /admin in the app, as written (with `{parameters}`)."""
    app = FastAPI()
    include_routers(app)
    return sorted(
        route.path
        for route in api_routes(app.routes)
        if route.path.startswith("/admin") and "GET" in (route.methods or ())
    )


def admin_pages(site: AdminSite) -> dict[str, str]:
    """Each GET route under /admin with real values in its path, by a name for messages."""
    samples = {"number": str(site.draft), "public_id": site.person, "token": site.invitation}
    pages = {}
    for path in admin_get_routes():
        if path in NOT_A_PAGE:
            continue
        names = re.findall(r"\{([a-z_]+)\}", path)
        missing = [name for name in names if name not in samples]
        assert not missing, f"{path}: give the test a real value for {missing}"
        pages[path] = re.sub(r"\{([a-z_]+)\}", lambda found: samples[found.group(1)], path)
    # The same pages in the other states staff meet them in.
    pages["sent edition"] = f"/admin/editions/{site.sent}"
    pages["progress, done"] = f"/admin/editions/{site.sent}/progress"
    pages["progress, sending"] = f"/admin/editions/{site.sending}/progress"
    pages["subscribers, refused search"] = "/admin/subscribers?status=onzin"
    pages["subscribers, found"] = "/admin/subscribers?q=example"
    return pages


@dataclass
class Walk:
    """A staff member's browser that checks each page it is on."""

    base_url: str
    page: Any
    width: str
    found: list[Violation] = field(default_factory=list)
    too_wide: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def open(self, path: str) -> int:
        response = self.page.goto(self.base_url + path)
        assert response is not None
        return int(response.status)

    def check(self, name: str) -> None:
        self.checked.append(name)
        self.found.extend(run_axe(self.page, where=f"{name} at {self.width} width"))
        layout = self.page.evaluate(LAYOUT_SCRIPT)
        limit = WIDTHS[self.width]["width"]
        if layout["width"] > limit:
            self.too_wide.append(f"{name}: {layout['width']} px wide at {limit} px")
        self.too_wide.extend(f"{name}: address squeezed in {item}" for item in layout["squeezed"])


def log_in(page: Any, base_url: str) -> None:
    """Log in on the login page as the person types it."""
    page.goto(base_url + "/admin/login")
    page.get_by_label("Naam").fill(STAFF_NAME)
    page.get_by_label("Wachtwoord").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    assert page.url == base_url + "/admin"


def refused_login(walk: Walk) -> None:
    """The login page after a wrong password (the walk checks the page itself later)."""
    assert walk.open("/admin/login") == 200
    walk.page.get_by_label("Naam").fill(STAFF_NAME)
    walk.page.get_by_label("Wachtwoord").fill("niet het goede wachtwoord")
    walk.page.get_by_role("button", name="Inloggen").click()
    walk.page.wait_for_load_state()
    walk.check("login refused")


def test_every_admin_get_route_is_walked(site: AdminSite) -> None:
    """A new page under /admin is in the walk below, or this names what it needs."""
    pages = admin_pages(site)
    for path in admin_get_routes():
        assert path in pages or path in NOT_A_PAGE, path
    for expected in ("/admin", "/admin/login", "/admin/editions/{number}/progress"):
        assert expected in pages


@pytest.mark.parametrize("width", WIDTHS)
def test_every_admin_page_passes_axe_and_fits_a_phone(
    site: AdminSite, browser: Any, width: str
) -> None:
    base_url = site.running.base_url
    without_scripts = new_context(browser, viewport=WIDTHS[width], java_script_enabled=False)
    log_in(without_scripts.new_page(), base_url)
    session = without_scripts.storage_state()
    without_scripts.close()

    context = new_context(browser, viewport=WIDTHS[width], bypass_csp=True, storage_state=session)
    walk = Walk(base_url, context.new_page(), width)
    refused_login(walk)
    pages = admin_pages(site)
    for name, path in pages.items():
        status = walk.open(path)
        assert status in (200, 400), (path, status)
        walk.check(name)
    context.close()

    counts = {impact: len(group) for impact, group in by_impact(walk.found).items()}
    print(f"axe at {width} width, {len(walk.checked)} pages: {counts}\n{report(walk.found)}")
    assert len(walk.checked) == len(pages) + 1  # the refused login besides every page
    failing = at_least("serious", walk.found)
    assert not failing and not walk.too_wide, "\n".join([report(failing), *walk.too_wide])
