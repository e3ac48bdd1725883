"""Staff's work on people in headless Chromium (JavaScript off), against the real server.

Add someone from a paper list, import a Dutch Excel file (and its Windows-1252 twin),
erase a person on request and read the tables after, and give a bounced person a new
chance: the confirmation mail arrives at the test SMTP server. axe checks each page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.staff.accounts import add_user
from subscribers.bounces import record_hard_bounce
from subscribers.consent import Requester
from subscribers.models import ConsentEvent, Subscriber, Suppression
from tests.support.axe import AXE_MISSING, AXE_SCRIPT, Violation, run_axe
from tests.support.browser import CHROMIUM, new_context
from tests.support.webharness import RunningSite, running_site

PASSWORD = "een lang genoeg wachtwoord"
THEMES = {"doe-je-mee": {"name": "Doe je mee?"}, "onderzoek": {"name": "Onderzoek"}}
WIDTHS = {"1280": {"width": 1280, "height": 900}, "390": {"width": 390, "height": 844}}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[RunningSite]:
    with running_site(make_settings, themes=THEMES) as running:
        with running.database.session() as session:
            add_user(session, "redactie", PASSWORD, email=None, now=utc_now())
        yield running


class Staff:
    """A staff member's browser at one width, checking each page it is asked to with axe."""

    def __init__(self, site: RunningSite, browser: Any, width: str) -> None:
        self.site = site
        self.context = new_context(
            browser, viewport=WIDTHS[width], java_script_enabled=False, bypass_csp=True
        )
        self.page = self.context.new_page()
        # axe needs script: it reads a copy of each page in a context of its own.
        self.axe_context = new_context(
            browser, viewport=WIDTHS[width], java_script_enabled=True, bypass_csp=True
        )
        self.axe_page = self.axe_context.new_page()
        self.width = width
        self.found: list[Violation] = []

    def log_in(self, path: str) -> None:
        self.page.goto(self.site.base_url + path)
        self.page.get_by_label("Naam").fill("redactie")
        self.page.get_by_label("Wachtwoord").fill(PASSWORD)
        self.page.get_by_role("button", name="Inloggen").click()
        assert self.page.url == self.site.base_url + path

    def check(self, name: str) -> None:
        if AXE_SCRIPT.exists():
            # The same document at the same address (for its stylesheets), JS-free in both.
            self.axe_page.goto(self.site.base_url + "/admin/login")
            self.axe_page.set_content(self.page.content())
            found = run_axe(self.axe_page, where=f"{name} at {self.width} width")
            self.found.extend(v for v in found if v.impact in ("critical", "serious"))

    def status_of(self, email: str) -> str:
        status: str = self.site.people.show(email).subscriber.status
        return status


@pytest.fixture(params=list(WIDTHS))
def staff(site: RunningSite, browser: Any, request: pytest.FixtureRequest) -> Iterator[Staff]:
    member = Staff(site, browser, request.param)
    yield member
    member.context.close()
    member.axe_context.close()
    assert [v.describe() for v in member.found] == []


def test_add_a_person_from_a_paper_list(site: RunningSite, staff: Staff) -> None:
    staff.log_in("/admin/subscribers")
    page = staff.page
    page.get_by_role("link", name="Iemand toevoegen").click()
    staff.check("add form")
    page.get_by_label("E-mailadres").fill("actiedag@example.org")
    page.get_by_label("Naam").fill("Fatima")
    page.get_by_label("Onderzoek").check()
    page.get_by_label("Meteen ingeschreven: de persoon gaf al toestemming").check()
    page.get_by_role("button", name="Toevoegen").click()
    page.get_by_text("Schrijf op waarom dit adres zonder bevestigingsmail").first.wait_for()
    staff.check("add form with an error")
    page.get_by_label("Waar staat de toestemming?").fill("papieren lijst actiedag 15 maart")
    page.get_by_role("button", name="Toevoegen").click()
    page.get_by_text("Toegevoegd en meteen ingeschreven.").wait_for()
    staff.check("a person's page")
    assert "papieren lijst actiedag 15 maart" in page.content()
    assert staff.status_of("actiedag@example.org") == "confirmed"
    assert [i for i in site.smtp.received if "actiedag@example.org" in i.recipients] == []


def excel_file(tmp_path: Path, name: str, content: str, encoding: str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def test_import_a_dutch_excel_file(site: RunningSite, staff: Staff, tmp_path: Path) -> None:
    utf8 = excel_file(
        tmp_path,
        "lijst.csv",
        "\ufeffe-mail;naam\r\nouder@example.org;Anouk Çelik\r\nkapot;Niemand\r\n",
        "utf-8",
    )
    windows = excel_file(
        tmp_path, "oud.csv", "E-mail;Naam\r\njeugdwerker@example.org;Zoë Ærts\r\n", "cp1252"
    )
    staff.log_in("/admin/subscribers")
    page = staff.page
    for path, email, name in (
        (utf8, "ouder@example.org", "Anouk Çelik"),
        (windows, "jeugdwerker@example.org", "Zoë Ærts"),
    ):
        page.goto(site.base_url + "/admin/subscribers")
        page.get_by_role("link", name="Een lijst importeren").click()
        staff.check("import form")
        page.get_by_label("Bestand (CSV, hoogstens 1 MB)").set_input_files(str(path))
        page.get_by_role("button", name="Bekijk wat er gebeurt").click()
        page.get_by_text("Er is nog niets opgeslagen.").wait_for()
        staff.check("import preview")
        assert name in page.content()
        assert page.locator('[data-count="new"]').inner_text() == "1"
        if path == utf8:
            assert "Regel 3: geen geldig e-mailadres" in page.content()
        with site.database.session() as session:
            assert session.scalar(select(Subscriber).where(Subscriber.email == email)) is None
        page.get_by_role("button", name="Importeren (1 persoon)").click()
        page.get_by_role("heading", name="Geïmporteerd").wait_for()
        staff.check("import done")
        assert page.locator('[data-count="pending"]').inner_text() == "1"
        site.wait_for_mail(email)
        assert staff.status_of(email) == "pending"


def everything_stored(site: RunningSite) -> str:
    """Every row of every table as text, to look for a person's traces in."""
    rows: list[str] = []
    tables = inspect(site.database.engine).get_table_names()
    with site.database.session() as session:
        for table in tables:
            rows.extend(
                repr(tuple(row)) for row in session.execute(text(f'SELECT * FROM "{table}"'))
            )
    return "\n".join(rows)


def test_erase_a_person_on_request(site: RunningSite, staff: Staff) -> None:
    site.people.add(
        "haalmijweg@example.org",
        name="Marieke Haalweg",
        themes=["onderzoek"],
        requester=Requester("cli"),
        confirmed=True,
        consent_note="papieren lijst",
    )
    staff.log_in("/admin/subscribers")
    page = staff.page
    page.get_by_label("Adres of naam").fill("haalmijweg")
    page.get_by_role("button", name="Zoeken").click()
    page.get_by_role("link", name="haalmijweg@example.org").click()
    page.get_by_role("link", name="Alle gegevens van dit adres wissen…").click()
    staff.check("erase question")
    assert "onherleidbare code (hash)" in page.content()
    page.get_by_label("Ja, ik weet het zeker: wis alle gegevens van dit adres.").check()
    page.get_by_role("button", name="Gegevens wissen").click()
    page.get_by_text("De gegevens zijn gewist.").wait_for()

    stored = everything_stored(site).casefold()
    assert "haalmijweg" not in stored and "marieke" not in stored
    with site.database.session() as session:
        assert session.scalars(select(Subscriber)).all() == []
        [suppression] = session.scalars(select(Suppression)).all()
        assert suppression.reason == "erased" and "@" not in suppression.address_hash
        for event in session.scalars(select(ConsentEvent)):
            assert event.subscriber_id is None and event.ip is None
            assert event.details in (None, {"staff": "redactie"})
        assert session.execute(text("SELECT COUNT(*) FROM confirmation_tokens")).scalar() == 0


def test_give_a_bounced_person_a_new_chance(site: RunningSite, staff: Staff) -> None:
    site.people.add(
        "vol@example.org",
        name=None,
        themes=[],
        requester=Requester("cli"),
        confirmed=True,
        consent_note="papieren lijst",
    )
    with site.database.session() as session:
        subscriber_id = session.scalar(select(Subscriber.id))
        assert subscriber_id is not None
        record_hard_bounce(
            session,
            subscriber_id,
            settings=site.settings,
            now=utc_now(),
            reply="552 mailbox full vol@example.org",
        )
    staff.log_in("/admin/subscribers")
    page = staff.page
    page.get_by_role("link", name="Onbestelbaar en klachten").click()
    staff.check("bounced and complained")
    assert "552 mailbox full (address)" in page.content()
    page.get_by_role("link", name="vol@example.org").click()
    page.get_by_role("button", name="Geef een nieuwe kans: stuur een bevestigingsmail").click()
    page.get_by_text("De bevestigingsmail is verstuurd.").wait_for()
    staff.check("a bounced person's page")
    mail = site.wait_for_mail("vol@example.org")
    body = mail.get_body(("plain",))
    assert body is not None and "/confirm/" in body.get_content()
    assert staff.status_of("vol@example.org") == "bounced"
    with site.database.session() as session:
        sources = session.execute(
            select(ConsentEvent.source, ConsentEvent.details).where(
                ConsentEvent.event == "subscribe_requested"
            )
        ).all()
    assert [(source, details["staff"]) for source, details in sources] == [("staff", "redactie")]


def test_axe_is_there_to_check_the_pages() -> None:
    if not AXE_SCRIPT.exists():
        pytest.skip(AXE_MISSING)
