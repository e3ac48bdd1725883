"""The dashboard: warnings in words, the schedule in words, the growth chart, no tracking."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.jobs.runs import Run
from newsletter.staff.accounts import add_user
from newsletter.staff.dashboard import overview
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.webharness import STAFF_PASSWORD, WebHarness, web_harness

READERS = ("ouder@example.org", "jongere@example.org")


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(make_settings, clock, feed={"urls": [str(SEEDS_FEED)]}) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", STAFF_PASSWORD, email=None, now=clock())
        yield harness


def a_run(web: WebHarness, *, days_ago: float, unknown: int = 0) -> None:
    started = web.clock() - timedelta(days=days_ago)
    with web.database.session() as session:
        session.add(
            Run(
                started_at=started,
                finished_at=started,
                trigger="schedule",
                outcome="ok",
                counts={"returned_unknown": unknown},
                error=None,
            )
        )


def troubled_state(web: WebHarness) -> None:
    """Edition 1 went out ten days ago, one mail of it waits for a retry; edition 2 is a
    draft of three days ago; the last run was eight days ago and set two mails aside."""
    clock = web.clock
    for address in READERS:
        web.confirmed(address)
    start = clock.now
    clock.advance(days=-10)
    fetch_all(web.settings, web.database, clock=clock)
    assert draft_edition(web.settings, web.database, clock=clock).number == 1
    web.smtp.faults.rcpt["jongere@example.org"] = "451 4.2.0 probeer het later"
    send_edition(web.settings, web.database, 1, clock=clock)
    clock.advance(days=7)
    assert draft_edition(web.settings, web.database, clock=clock, force=True).number == 2
    clock.now = start
    a_run(web, days_ago=8, unknown=2)


def test_the_dashboard_warns_in_words(web: WebHarness, staff: TestClient) -> None:
    troubled_state(web)
    page = staff.get("/admin").text
    attention = page[page.index('id="attention"') : page.index('id="next-run"')]
    text = re.sub(r"<[^>]+>", "", attention)
    assert "De planner heeft niet gedraaid." in text
    assert "Er had op 10 november 2026, 09:00 een ronde moeten zijn" in text
    assert "De laatste ronde begon op 9 november 2026, 09:00." in text
    assert "Editie 2 wacht al 3 dagen op goedkeuring." in text
    assert "1 mail van editie 1 wacht op een nieuwe poging." in text
    assert "2 teruggekomen mails zijn sinds 3 november 2026 apart gezet" in text
    assert "De ronde draait elke dinsdag om 09:00." in page


def test_a_dashboard_with_nothing_wrong_has_no_warnings(web: WebHarness, staff: TestClient) -> None:
    a_run(web, days_ago=0.01)
    page = staff.get("/admin").text
    assert 'id="attention"' not in page


def test_the_dashboard_shows_the_growth_chart_and_says_what_we_do_not_track(
    web: WebHarness, staff: TestClient
) -> None:
    for address in READERS:
        web.confirmed(address)
    web.request("nog-niet@example.org")
    page = staff.get("/admin").text
    assert page.count('<svg class="growth-chart"') == 2
    assert '<title id="groei-title">' in page and '<desc id="stromen-desc">' in page
    assert "Nu 2 ingeschreven abonnees; een jaar geleden 0." in page
    assert "3 aanmeldingen, 2 bevestigingen en 0 vertrekkers" in page
    assert "De cijfers per week" in page and "16 november 2026" in page
    assert "Hoeveel mensen de nieuwsbrief openen of op links klikken, weten we niet" in page
    assert "<script" not in page


def test_the_overview_is_a_library_call_with_the_clock_passed_in(web: WebHarness) -> None:
    troubled_state(web)
    with web.database.session() as session:
        result = overview(session, web.settings, now=web.clock())
    assert [item.kind for item in result.warnings] == [
        "scheduler_missed",
        "draft_waiting",
        "retries_waiting",
        "returns_not_understood",
    ]
    assert result.schedule == "elke dinsdag om 09:00"
    assert result.growth[-1].confirmed == 2
