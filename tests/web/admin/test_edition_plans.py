"""The edition pages beyond the review: planned sends, results, odd edition numbers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.core.models import Base
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.editions.lifecycle import get_edition
from newsletter.jobs.planned import send_planned_now
from newsletter.staff.accounts import add_user
from subscribers.bounces import record_hard_bounce
from subscribers.models import Subscriber
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.webharness import (
    STAFF_PASSWORD,
    WebHarness,
    api_routes,
    csrf_token,
    web_harness,
)

STAFF_EMAIL = "redactie@rvjeugdzorg.nl"
TOO_BIG = 2**63  # one past SQLite's largest integer


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(
        make_settings,
        clock,
        feed={"urls": [str(SEEDS_FEED)]},
        schedule={"staff": ["hoofdredactie@rvjeugdzorg.nl"]},
    ) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", STAFF_PASSWORD, email=STAFF_EMAIL, now=clock())
        yield harness


@pytest.fixture
def edition(web: WebHarness) -> int:
    fetch_all(web.settings, web.database, clock=web.clock)
    result = draft_edition(web.settings, web.database, clock=web.clock.later(minutes=1))
    assert result.number is not None
    return result.number


def everything(web: WebHarness) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the harness's snapshot holds only those about people)."""
    with web.database.session() as session:
        return {
            table.name: [tuple(row) for row in session.execute(select(table))]
            for table in Base.metadata.sorted_tables
        }


def post(client: TestClient, path: str, data: dict[str, Any] | None = None) -> Any:
    """Post a form from the staff pages as the browser would (with the CSRF token)."""
    token = csrf_token(client.get("/admin").text)
    return client.post(path, data={"csrf_token": token, **(data or {})}, follow_redirects=False)


@pytest.mark.parametrize("number", [TOO_BIG, 10**30])
def test_an_edition_number_too_big_for_the_database_is_not_found(
    web: WebHarness, staff: TestClient, edition: int, number: int
) -> None:
    before = everything(web)
    base = f"/admin/editions/{number}"
    for path in (base, f"{base}/preview.html", f"{base}/progress"):
        assert staff.get(path).status_code == 404, path
    for path, data in (
        (f"{base}/text", {"subject": "Nieuw", "intro": ""}),
        (f"{base}/send", {"confirm": "yes"}),
        (f"{base}/test", {"address": STAFF_EMAIL}),
        (f"{base}/articles/1", {"action": "remove"}),
        (f"/admin/editions/{edition}/articles/{number}", {"action": "remove"}),
    ):
        assert post(staff, path, data).status_code == 404, path
    assert everything(web) == before


# -- planned sends -------------------------------------------------------------------------


def state_and_plan(web: WebHarness, number: int) -> tuple[str, datetime | None, str | None]:
    with web.database.session() as session:
        edition = get_edition(session, number)
        return edition.state, edition.send_at, edition.planned_by


def test_staff_plan_an_approved_edition_and_it_goes_out_when_its_time_comes(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    web.confirmed("ouder@example.org")
    approved = post(staff, f"/admin/editions/{edition}/approve")
    assert approved.status_code == 303
    assert "De editie is goedgekeurd" in staff.get(approved.headers["location"]).text
    # Wednesday 18 November, 09:00 in Amsterdam (winter time: UTC+1).
    planned = post(staff, f"/admin/editions/{edition}/plan", {"day": "2026-11-18", "time": "09:00"})
    assert planned.status_code == 303
    page = staff.get(f"/admin/editions/{edition}").text
    assert "gaat op 18 november 2026, 09:00 uit" in page and "ingepland door redactie" in page
    when = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
    assert state_and_plan(web, edition) == ("approved", when, "redactie")
    dashboard = staff.get("/admin").text
    assert "Ingepland" in dashboard and "gaat op 18 november 2026, 09:00 uit." in dashboard

    # A minute early nothing goes; at the time the scheduler's check sends it.
    web.clock.now = when - timedelta(minutes=1)
    assert send_planned_now(web.settings, web.database, clock=web.clock) == []
    assert web.messages_to("ouder@example.org")[1:] == []
    web.clock.now = when
    sent = send_planned_now(web.settings, web.database, clock=web.clock)
    assert sent is not None and [summary.number for summary in sent] == [edition]
    assert state_and_plan(web, edition)[0] == "sent"
    assert len(web.messages_to("ouder@example.org")) == 2  # the confirmation, the edition


def test_a_plan_can_be_cancelled_and_a_change_cancels_it_too(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    post(staff, f"/admin/editions/{edition}/approve")
    post(staff, f"/admin/editions/{edition}/plan", {"day": "2026-11-18", "time": "09:00"})
    cancelled = post(staff, f"/admin/editions/{edition}/plan/cancel")
    assert cancelled.status_code == 303
    assert state_and_plan(web, edition) == ("approved", None, None)
    post(staff, f"/admin/editions/{edition}/plan", {"day": "2026-11-18", "time": "09:00"})
    post(staff, f"/admin/editions/{edition}/text", {"subject": "Anders", "intro": ""})
    assert state_and_plan(web, edition) == ("draft", None, None)


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"day": "2026-11-17", "time": "08:59"}, 400, "Dat moment is al voorbij."),
        ({"day": "2026-11-31", "time": "09:00"}, 400, "Vul een geldige datum en tijd in"),
        ({"day": "morgen", "time": "09:00"}, 400, "Vul een geldige datum en tijd in"),
        ({"day": "2026-11-18", "time": "25:00"}, 400, "Vul een geldige datum en tijd in"),
    ],
)
def test_a_time_that_is_not_valid_or_has_passed_is_refused(
    web: WebHarness,
    staff: TestClient,
    edition: int,
    fields: dict[str, str],
    status: int,
    words: str,
) -> None:
    post(staff, f"/admin/editions/{edition}/approve")
    before = everything(web)
    refused = post(staff, f"/admin/editions/{edition}/plan", fields)
    assert refused.status_code == status
    assert words in refused.text
    assert everything(web) == before


def test_an_edition_that_is_not_approved_cannot_be_planned(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    before = everything(web)
    refused = post(staff, f"/admin/editions/{edition}/plan", {"day": "2026-11-18", "time": "09:00"})
    assert refused.status_code == 409
    assert "Keur de editie eerst goed." in refused.text
    assert everything(web) == before


# -- results -------------------------------------------------------------------------------


def test_the_results_show_counts_and_every_failure_with_the_servers_reply(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    reader = web.confirmed("ouder@example.org")
    web.confirmed("weg@example.org")
    web.confirmed("vol@example.org")
    web.confirmed("later@example.org")
    web.smtp.faults.rcpt["weg@example.org"] = "550 5.1.1 <weg@example.org>: mailbox unknown"
    web.smtp.faults.rcpt["vol@example.org"] = "452 4.2.2 mailbox full"
    send_edition(web.settings, web.database, edition, clock=web.clock)
    # A delivery report comes in later for a mail the server had accepted.
    with web.database.session() as session:
        later = session.scalars(
            select(Subscriber.id).where(Subscriber.email == "later@example.org")
        ).one()
        record_hard_bounce(
            session,
            later,
            settings=web.settings,
            now=web.clock() + timedelta(minutes=5),
            reply="550 5.2.1 mailbox disabled",
            edition_id=edition,
            via="dsn",
        )
    assert reader.email == "ouder@example.org"

    page = staff.get(f"/admin/editions/{edition}/results")
    assert page.status_code == 200
    text = page.text
    assert 'data-count="sent">2<' in text and 'data-count="failed">1<' in text
    assert 'data-count="waiting">1<' in text and 'data-count="skipped">0<' in text
    assert "weg@example.org" in text and "mailbox unknown" in text and "mislukt" in text
    assert "vol@example.org" in text and "mailbox full" in text and "later opnieuw" in text
    assert "later@example.org" in text and "mailbox disabled" in text
    assert "teruggekomen" in text
    assert "ouder@example.org" not in text  # it arrived: not a problem
    review = staff.get(f"/admin/editions/{edition}").text
    assert f'href="/admin/editions/{edition}/results"' in review
    # The public archive shows the edition, never who it failed for.
    archive = web.client().get(f"/archive/{edition}").text
    assert "weg@example.org" not in archive and "mailbox" not in archive


def test_results_of_an_edition_that_does_not_exist_are_not_found(staff: TestClient) -> None:
    assert staff.get("/admin/editions/424242/results").status_code == 404
    assert staff.get(f"/admin/editions/{TOO_BIG}/results").status_code == 404


# -- hand-written items --------------------------------------------------------------------

ITEM = {
    "title": "Actiedag 15 maart in Utrecht",
    "link": "https://rvjeugdzorg.nl/actiedag",
    "text": "Kom ook! Samen praten we over jeugdzorg die werkt.",
}


def test_a_hand_written_item_shows_in_the_mail_and_can_be_removed(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    post(staff, f"/admin/editions/{edition}/approve")
    added = post(staff, f"/admin/editions/{edition}/items", ITEM)
    assert added.status_code == 303
    page = staff.get(added.headers["location"]).text
    assert "Het eigen bericht staat erin." in page
    assert "Kom ook! Samen praten we over jeugdzorg die werkt." in page  # the text version
    preview = staff.get(f"/admin/editions/{edition}/preview.html").text
    assert "Actiedag 15 maart in Utrecht" in preview
    assert 'href="https://rvjeugdzorg.nl/actiedag"' in preview
    assert state_and_plan(web, edition)[0] == "draft"  # the change took the approval back

    with web.database.session() as session:
        [item] = get_edition(session, edition).items
        item_id = item.id
    web.clock.advance(seconds=1)  # the preview is kept until the edition changes (its time)
    removed = post(staff, f"/admin/editions/{edition}/items/{item_id}/remove")
    assert removed.status_code == 303
    assert "Actiedag" not in staff.get(f"/admin/editions/{edition}/preview.html").text
    assert post(staff, f"/admin/editions/{edition}/items/{item_id}/remove").status_code == 404


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "ftp://rvjeugdzorg.nl/actiedag",
        "rvjeugdzorg.nl/actiedag",
        "mailto:info@rvjeugdzorg.nl",
        "https://",
        "",
    ],
)
def test_an_item_without_an_http_link_is_refused(
    web: WebHarness, staff: TestClient, edition: int, link: str
) -> None:
    before = everything(web)
    with web.database.session() as session:
        stamp = get_edition(session, edition).updated_at
    refused = post(staff, f"/admin/editions/{edition}/items", {**ITEM, "link": link})
    assert refused.status_code == 400
    assert "De link moet een webadres zijn dat begint met https:// of http://." in refused.text
    assert everything(web) == before
    with web.database.session() as session:
        assert get_edition(session, edition).items == []
        assert get_edition(session, edition).updated_at == stamp


def test_an_item_without_a_title_is_refused(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    refused = post(staff, f"/admin/editions/{edition}/items", {**ITEM, "title": "  "})
    assert refused.status_code == 400
    assert "Geef het bericht een titel" in refused.text


# -- announcements -------------------------------------------------------------------------

ANNOUNCEMENT = {
    "subject": "Actiedag 15 maart: doe je mee?",
    "body": "Op **15 maart** houden we een actiedag in Utrecht.",
}


def test_an_announcement_goes_to_every_reader_whatever_their_themes(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    web.confirmed("ouder@example.org")
    web.confirmed("thema@example.org", themes=("doe-je-mee",))
    form = staff.get("/admin/announcements/new")
    assert form.status_code == 200 and "Nieuwe mededeling" in form.text
    written = post(staff, "/admin/announcements/new", ANNOUNCEMENT)
    assert written.status_code == 303
    number = int(written.headers["location"].rsplit("/", 1)[1])
    assert number == edition + 1
    page = staff.get(f"/admin/editions/{number}").text
    assert "Op 15 maart houden we een actiedag in Utrecht." in page  # the text version
    assert "<strong>15 maart</strong>" in staff.get(f"/admin/editions/{number}/preview.html").text
    with web.database.session() as session:
        assert get_edition(session, edition).state == "draft"  # the digest stays as it was
        assert get_edition(session, number).kind == "announcement"

    sent = post(staff, f"/admin/editions/{number}/send", {"confirm": "yes"})
    assert sent.status_code == 303
    web.app.state.admin.sends.wait(number, timeout=60)
    assert state_and_plan(web, number)[0] == "sent"
    for reader in ("ouder@example.org", "thema@example.org"):
        [mail] = [m for m in web.messages_to(reader) if m["Subject"] == ANNOUNCEMENT["subject"]]
        assert mail["List-Id"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"subject": " "}, "Geef de mededeling een onderwerp"),
        ({"body": ""}, "Schrijf de tekst van de mededeling"),
        ({"article": "424242"}, "Een gekozen artikel bestaat niet"),
        ({"article": "twee"}, "Een gekozen artikel bestaat niet"),
    ],
)
def test_an_announcement_that_does_not_do_is_refused_and_nothing_is_stored(
    web: WebHarness, staff: TestClient, fields: dict[str, str], words: str
) -> None:
    before = everything(web)
    refused = post(staff, "/admin/announcements/new", {**ANNOUNCEMENT, **fields})
    assert refused.status_code == 400
    assert words in refused.text
    assert everything(web) == before


def test_an_announcement_quotes_articles_and_leaves_them_to_the_digest(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    web.confirmed("ouder@example.org")
    with web.database.session() as session:
        quoted = [entry.article_id for entry in get_edition(session, edition).entries][:2]
        titles = [entry.article.title for entry in get_edition(session, edition).entries][:2]
    form = staff.get("/admin/announcements/new").text
    assert all(f'value="{article_id}"' in form for article_id in quoted)
    written = post(
        staff, "/admin/announcements/new", {**ANNOUNCEMENT, "article": [str(i) for i in quoted]}
    )
    number = int(written.headers["location"].rsplit("/", 1)[1])
    preview = staff.get(f"/admin/editions/{number}/preview.html").text
    assert all(title.split()[0] in preview for title in titles)
    send_edition(web.settings, web.database, number, clock=web.clock)
    # The digest holding the same articles can still go out after it.
    summary = send_edition(web.settings, web.database, edition, clock=web.clock)
    assert summary.finished and summary.counts.sent == 1


# -- the guard -----------------------------------------------------------------------------

NEW_ROUTES = (
    ("POST", "/admin/editions/1/approve"),
    ("POST", "/admin/editions/1/plan"),
    ("POST", "/admin/editions/1/plan/cancel"),
    ("GET", "/admin/editions/1/results"),
    ("POST", "/admin/editions/1/items"),
    ("POST", "/admin/editions/1/items/1/remove"),
    ("GET", "/admin/announcements/new"),
    ("POST", "/admin/announcements/new"),
)


def test_the_new_edition_routes_need_a_session(web: WebHarness, edition: int) -> None:
    known = {
        (method, re.sub(r"\{[a-z_]+\}", "1", route.path))
        for route in api_routes(web.app.routes)
        for method in route.methods or ()
    }
    assert set(NEW_ROUTES) <= known
    before = everything(web)
    for method, path in NEW_ROUTES:
        response = web.client().request(method, path, follow_redirects=False)
        if method == "GET":
            assert response.status_code == 303, path
            assert response.headers["location"] == f"/admin/login?next={path}"
        else:
            assert response.status_code == 401, path
    assert everything(web) == before
