"""The staff's subscriber pages: search, one person with the consent log, the CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from newsletter.cli.app import app
from newsletter.cli.support import AppContext
from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.delivery.outbox import OutboxRow
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import draft_edition
from newsletter.staff.accounts import add_user
from newsletter.web.admin.people import PAGE_SIZE
from subscribers.consent import Requester
from subscribers.export import CHUNK_ROWS, SPREADSHEET_HEADER, spreadsheet_pieces
from subscribers.models import ConsentEvent, Subscriber
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.subscribers import SECRET
from tests.support.webharness import CONSENT, WebHarness, api_routes, web_harness
from tests.support.webharness import STAFF_PASSWORD as PASSWORD

CLI = Requester("cli")
# An address in a result row: the link by public id, the address as its text.
RESULT_ROW = re.compile(r'<td class="address"><a href="/admin/subscribers/([^"]+)">([^<]+)</a>')


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(
        make_settings, clock, themes=THEMES, feed={"urls": [str(SEEDS_FEED)]}
    ) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", PASSWORD, email=None, now=clock())
        yield harness


THEMES = {
    "doe-je-mee": {"name": "Doe je mee?"},
    "onderzoek": {"name": "Onderzoek"},
}


def add(web: WebHarness, email: str, name: str | None = None, **options: Any) -> str:
    """Put `email` on the list as staff would (confirmed, no mail); its public id."""
    web.people.add(email, name=name, themes=[], requester=CLI, confirmed=True, consent_note="test")
    web.clock.advance(minutes=1)  # each one newer than the one before
    return public_id(web, email)


def public_id(web: WebHarness, email: str) -> str:
    with web.database.session() as session:
        found = session.scalar(
            select(Subscriber.public_id).where(Subscriber.email_key == email.casefold())
        )
    assert found is not None
    return found


def found(page: str) -> list[str]:
    """The addresses in a page of results, in their order; every link is by public id."""
    rows = RESULT_ROW.findall(page)
    assert all("@" not in link for link, _ in rows)
    return [address for _, address in rows]


def search(client: TestClient, **params: Any) -> Any:
    return client.get("/admin/subscribers", params=params)


# -- the guard -----------------------------------------------------------------------------


def test_every_subscriber_page_needs_a_session(web: WebHarness) -> None:
    person = add(web, "ouder@example.org", name="Sanne")
    paths = [
        "/admin/subscribers",
        "/admin/subscribers?q=ouder&status=confirmed&page=1",
        "/admin/subscribers?status=nonsense",
        f"/admin/subscribers/{person}",
        "/admin/subscribers/onbekend",
        "/admin/subscribers/export.csv",
        "/admin/subscribers/export.csv?status=confirmed",
        "/admin/subscribers/new",
        "/admin/subscribers/returned",
        "/admin/subscribers/import",
        f"/admin/subscribers/{person}/erase",
    ]
    forged = web.client()
    forged.cookies.set("staff", "not-a-session-token")
    for client in (web.client(), forged):
        for path in paths:
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/admin/login?next=/admin"), path
            assert "ouder@example.org" not in response.text
        before = web.snapshot()
        for action in ("new", "import", "import/confirm", f"{person}/details"):
            assert client.post(f"/admin/subscribers/{action}").status_code == 401, action
        for action in (f"{person}/confirm-again", f"{person}/unsubscribe", f"{person}/erase"):
            assert client.post(f"/admin/subscribers/{action}").status_code == 401, action
        assert web.snapshot() == before
    # The lists above holds every route of these pages (a new one must be added to it).
    routes = {route.path for route in api_routes(web.app.routes)}
    assert {path for path in routes if path.startswith("/admin/subscribers")} == {
        "/admin/subscribers",
        "/admin/subscribers/export.csv",
        "/admin/subscribers/{public_id}",
        "/admin/subscribers/new",
        "/admin/subscribers/returned",
        "/admin/subscribers/import",
        "/admin/subscribers/import/confirm",
        "/admin/subscribers/{public_id}/details",
        "/admin/subscribers/{public_id}/confirm-again",
        "/admin/subscribers/{public_id}/unsubscribe",
        "/admin/subscribers/{public_id}/erase",
    }


def test_the_login_leads_back_to_the_person(web: WebHarness) -> None:
    person = add(web, "ouder@example.org")
    client = web.client()
    answer = client.get(f"/admin/subscribers/{person}", follow_redirects=False)
    assert answer.headers["location"] == f"/admin/login?next=/admin/subscribers/{person}"


# -- search --------------------------------------------------------------------------------


def test_an_empty_search_lists_the_newest_first_with_counts(
    web: WebHarness, staff: TestClient
) -> None:
    add(web, "eerste@example.org")
    add(web, "tweede@example.org")
    web.request("derde@example.org")  # pending
    page = search(staff)
    assert page.status_code == 200
    assert found(page.text) == ["derde@example.org", "tweede@example.org", "eerste@example.org"]
    assert "3 abonnees" in page.text
    assert re.search(r">ingeschreven</a></th><td>2<", page.text)
    assert re.search(r">nog niet bevestigd</a></th><td>1<", page.text)
    assert re.search(r"totaal</th><td>3<", page.text)
    assert "Pagina 1 van" not in page.text  # one page: no page links


def test_search_by_part_of_the_address_or_the_name_in_any_case(
    web: WebHarness, staff: TestClient
) -> None:
    add(web, "Ouder.Jansen@Example.org", name="Sanne de Vries")
    add(web, "pleegzorg@example.org", name="Jeroen Ouderkerk")
    add(web, "iemand@example.org", name="Priya")
    assert found(search(staff, q="OUDER.jan").text) == ["Ouder.Jansen@example.org"]
    assert found(search(staff, q="  de VRIES ").text) == ["Ouder.Jansen@example.org"]
    # A name and an address can both match.
    assert sorted(found(search(staff, q="ouder").text)) == [
        "Ouder.Jansen@example.org",
        "pleegzorg@example.org",
    ]
    nobody = search(staff, q="niemand")
    assert nobody.status_code == 200 and found(nobody.text) == []
    assert "Niemand gevonden" in nobody.text and "0 abonnees" in nobody.text


def test_search_filters_by_status(web: WebHarness, staff: TestClient) -> None:
    add(web, "blijft@example.org")
    web.unsubscribed("weg@example.org")
    web.with_status("terug@example.org", "bounced")
    web.request("wacht@example.org")
    assert found(search(staff, status="unsubscribed").text) == ["weg@example.org"]
    assert found(search(staff, status="bounced").text) == ["terug@example.org"]
    assert found(search(staff, status="pending").text) == ["wacht@example.org"]
    assert found(search(staff, status="complained").text) == []
    both = search(staff, q="e", status="confirmed").text
    assert found(both) == ["blijft@example.org"]
    assert '<option value="confirmed" selected>' in both
    # Statuses are shown in Dutch.
    assert "afgemeld" in search(staff, status="unsubscribed").text


def test_like_wildcards_in_the_search_are_literal(web: WebHarness, staff: TestClient) -> None:
    add(web, "a_b@example.org", name="Honderd procent")
    add(web, "axb@example.org", name="100% zeker")
    add(web, "map@example.org", name="C:\\Schuine streep")
    add(web, "slash@example.org", name="Jan/Piet")
    assert found(search(staff, q="a_b").text) == ["a_b@example.org"]
    assert found(search(staff, q="%").text) == ["axb@example.org"]
    assert found(search(staff, q="0%").text) == ["axb@example.org"]
    assert found(search(staff, q=":\\").text) == ["map@example.org"]
    assert found(search(staff, q="n/p").text) == ["slash@example.org"]
    assert found(search(staff, q="_").text) == ["a_b@example.org"]


def test_results_come_in_pages(web: WebHarness, staff: TestClient) -> None:
    for number in range(PAGE_SIZE + 3):
        web.people.add(
            f"lezer{number:03}@example.org",
            name=None,
            themes=[],
            requester=CLI,
            confirmed=True,
            consent_note="test",
        )
        web.clock.advance(seconds=1)
    first = search(staff, q="lezer")
    assert first.status_code == 200
    rows = found(first.text)
    assert len(rows) == PAGE_SIZE and rows[0] == f"lezer{PAGE_SIZE + 2:03}@example.org"
    assert f"{PAGE_SIZE + 3} abonnees" in first.text and "Pagina 1 van 2" in first.text
    assert 'href="/admin/subscribers?q=lezer&amp;page=2" rel="next"' in first.text
    second = search(staff, q="lezer", page=2)
    assert found(second.text) == [
        "lezer002@example.org",
        "lezer001@example.org",
        "lezer000@example.org",
    ]
    assert f"{PAGE_SIZE + 1} tot en met {PAGE_SIZE + 3}" in second.text
    assert 'href="/admin/subscribers?q=lezer" rel="prev"' in second.text
    assert not set(rows) & set(found(second.text))


@pytest.mark.parametrize(
    "params",
    [
        {"status": "nonsense"},
        {"status": "CONFIRMED"},
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1.5"},
        {"page": "²"},
        {"page": "99999999999999999999999"},
        {"page": "2"},  # past the last page
        {"q": "x" * 300},
    ],
)
def test_a_bad_status_or_page_is_a_400_page(
    web: WebHarness, staff: TestClient, params: dict[str, str]
) -> None:
    add(web, "ouder@example.org")
    response = search(staff, **params)
    assert response.status_code == 400
    assert "Dat kon niet" in response.text and 'name="q"' in response.text
    assert found(response.text) == []


def test_a_bad_status_for_the_export_is_a_400_page(web: WebHarness, staff: TestClient) -> None:
    response = staff.get("/admin/subscribers/export.csv", params={"status": "iedereen"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


# -- one person ----------------------------------------------------------------------------


def test_a_person_shows_their_details_and_consent_log_in_order(
    web: WebHarness, staff: TestClient
) -> None:
    token = web.request("ouder@example.org", name="Sanne de Vries", themes=("onderzoek",))
    web.clock.advance(minutes=20)
    visitor = Requester("web", ip="203.0.113.5", user_agent="Testbrowser/1.0")
    assert web.flows.confirm(token, visitor) is not None
    web.clock.advance(minutes=20)
    add(web, "ander@example.org", name="Ander")  # someone else's log stays out
    person = public_id(web, "ouder@example.org")

    response = staff.get(f"/admin/subscribers/{person}")
    assert response.status_code == 200
    page = response.text
    assert "ouder@example.org" in page and "Sanne de Vries" in page
    assert "ingeschreven" in page and "Onderzoek" in page
    assert "17 november 2026" in page
    events = re.findall(r'data-event="([a-z_]+)"', page)
    assert events == ["subscribe_requested", "confirmation_mail_sent", "confirmed"]
    for dutch in ("aanmelding gevraagd", "bevestigingsmail verstuurd", "aanmelding bevestigd"):
        assert dutch in page
    # The text the person saw, with the request and again with the confirmation.
    assert page.count(f'<blockquote class="consent-text">{CONSENT}</blockquote>') == 2
    # The IP as the log keeps it (ip_policy "hash"), never the address itself.
    with web.database.session() as session:
        stored = session.scalar(select(ConsentEvent.ip).where(ConsentEvent.event == "confirmed"))
    assert stored and stored != "203.0.113.5"
    assert stored in page and "203.0.113.5" not in page
    assert "Testbrowser/1.0" in page
    assert "ander@example.org" not in page
    assert "Er is nog geen editie naar dit adres gegaan." in page


def test_a_person_shows_the_editions_sent_to_them(web: WebHarness, staff: TestClient) -> None:
    web.confirmed("lezer@example.org")
    fetch_all(web.settings, web.database, clock=web.clock)
    number = draft_edition(web.settings, web.database, clock=web.clock).number
    assert number is not None
    send_edition(web.settings, web.database, number, clock=web.clock)
    page = staff.get(f"/admin/subscribers/{public_id(web, 'lezer@example.org')}").text
    assert f'<a href="/admin/editions/{number}">{number}</a>' in page
    assert "verstuurd" in page
    # What the server wrote back is shown without the address.
    with web.database.session() as session:
        session.execute(
            update(OutboxRow).values(last_reply="250 2.0.0 OK for <Lezer@Example.org> queued")
        )
    page = staff.get(f"/admin/subscribers/{public_id(web, 'lezer@example.org')}").text
    assert "250 2.0.0 OK for &lt;(address)&gt; queued" in page
    assert "Lezer@Example.org" not in page


def test_an_unknown_person_is_a_404(web: WebHarness, staff: TestClient) -> None:
    add(web, "ouder@example.org")
    with web.database.session() as session:
        row_id = session.scalar(select(Subscriber.id))
    for wrong in ("onbekend", "ouder@example.org", str(row_id), "x" * 80, "a%20b"):
        assert staff.get(f"/admin/subscribers/{wrong}").status_code == 404, wrong


def test_an_erased_person_is_gone(web: WebHarness, staff: TestClient) -> None:
    person = add(web, "weg@example.org")
    web.people.erase("weg@example.org", CLI)
    assert staff.get(f"/admin/subscribers/{person}").status_code == 404


# -- the export ----------------------------------------------------------------------------


def cli_export(web: WebHarness, tmp_path: Path, *args: str) -> str:
    """What `newsletter subscribers export` writes for the same database."""
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{web.settings.database_url}"\n', encoding="utf-8")
    result = CliRunner(env={"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_CONFIG": ""}).invoke(
        app,
        ["--config", str(config), "subscribers", "export", *args],
        obj=AppContext(config_path=config, clock=web.clock),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def spreadsheet(text: str) -> list[list[str]]:
    """The download as Excel in a Dutch locale reads it: BOM first, `;` between cells."""
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline=""), delimiter=";"))


def test_the_export_opens_in_a_dutch_spreadsheet(web: WebHarness, staff: TestClient) -> None:
    add(web, "een@example.org", name="Een; de eerste")
    add(web, "twee@example.org", name='Twee "de tweede"')
    add(web, "drie@example.org", name="Drië")
    web.request("wacht@example.org", themes=("doe-je-mee", "onderzoek"))
    web.unsubscribed("weg@example.org")

    response = staff.get("/admin/subscribers/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        response.headers["content-disposition"] == 'attachment; filename="abonnees-2026-11-17.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    rows = spreadsheet(response.content.decode("utf-8"))
    assert rows[0] == ["e-mail", "naam", "status", "thema's", "aangemeld", "bevestigd"]
    assert len(rows) == 6
    assert rows[1][:3] == ["een@example.org", "Een; de eerste", "bevestigd"]
    assert rows[2][1] == 'Twee "de tweede"' and rows[3][1] == "Drië"
    assert rows[4][:4] == [
        "wacht@example.org",
        "",
        "wacht op bevestiging",
        "Doe je mee?, Onderzoek",
    ]
    assert rows[5][2] == "afgemeld"
    # Local time (Amsterdam, winter: UTC+1), day first, as a Dutch spreadsheet shows it.
    assert re.fullmatch(r"\d\d-\d\d-\d{4} \d\d:\d\d", rows[1][4])
    with web.database.session() as session:
        created = session.scalar(
            select(Subscriber.created_at).where(Subscriber.email_key == "een@example.org")
        )
    assert created is not None
    local = created.astimezone(ZoneInfo("Europe/Amsterdam"))
    assert rows[1][4] == rows[1][5] == local.strftime("%d-%m-%Y %H:%M")
    assert rows[4][5] == ""

    confirmed = staff.get("/admin/subscribers/export.csv", params={"status": "confirmed"})
    assert (
        'filename="abonnees-confirmed-2026-11-17.csv"' in confirmed.headers["content-disposition"]
    )
    only = spreadsheet(confirmed.content.decode("utf-8"))
    assert [row[0] for row in only[1:]] == [
        "een@example.org",
        "twee@example.org",
        "drie@example.org",
    ]


def test_formulas_are_neutralised_in_every_column_of_the_export(
    web: WebHarness, staff: TestClient, tmp_path: Path
) -> None:
    add(web, "som@example.org", name="=2+3")
    add(web, "min@example.org", name="-Piet")
    add(web, "plus@example.org", name="+31 Jan")
    add(web, "=cmd|'/Ccalc'!A0@example.org", name="Gewoon")
    add(web, "+som@example.org", name="Som")
    rows = spreadsheet(staff.get("/admin/subscribers/export.csv").text)[1:]
    assert [row[:2] for row in rows] == [
        ["som@example.org", "'=2+3"],
        ["min@example.org", "'-Piet"],
        ["plus@example.org", "'+31 Jan"],
        ["'=cmd|'/Ccalc'!A0@example.org", "Gewoon"],
        ["'+som@example.org", "Som"],
    ]
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    # The CLI's export protects the address as well.
    cli_rows = parsed(cli_export(web, tmp_path))[1:]
    assert [row[0] for row in cli_rows][3:] == [
        "'=cmd|'/Ccalc'!A0@example.org",
        "'+som@example.org",
    ]


def test_the_export_comes_in_pieces_and_stops_reading_when_broken_off() -> None:
    closed = []

    def lines(count: int) -> Iterator[list[str]]:
        try:
            for number in range(count):
                yield [str(number)] * len(SPREADSHEET_HEADER)
        finally:
            closed.append(True)

    pieces = list(spreadsheet_pieces(lines(2 * CHUNK_ROWS + 1)))
    assert len(pieces) == 3 and closed == [True]
    whole = spreadsheet("".join(pieces))
    assert whole[0] == list(SPREADSHEET_HEADER) and len(whole) == 2 * CHUNK_ROWS + 2

    closed.clear()
    stream = spreadsheet_pieces(lines(5 * CHUNK_ROWS))
    next(stream)
    stream.close()  # the download was broken off
    assert closed == [True]
