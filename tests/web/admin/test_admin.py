"""The staff pages: login, the guard on every route, the dashboard, the draft review."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.delivery.outbox import state_counts
from newsletter.editions.drafting import draft_edition
from newsletter.editions.lifecycle import get_edition
from newsletter.jobs.runs import Run
from newsletter.staff.accounts import StaffSession, add_user
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.waiting import wait_until
from tests.support.webharness import STAFF_PASSWORD as PASSWORD
from tests.support.webharness import WebHarness, api_routes, csrf_token, log_in, web_harness

STAFF_EMAIL = "redactie@rvjeugdzorg.nl"


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(
        make_settings,
        clock,
        feed={"urls": [str(SEEDS_FEED)]},
        web={"login_limit": 4, "signup_limit_per_ip": 1000},
        schedule={"staff": ["hoofdredactie@rvjeugdzorg.nl"]},
    ) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", PASSWORD, email=STAFF_EMAIL, now=clock())
        yield harness


@pytest.fixture
def edition(web: WebHarness) -> int:
    fetch_all(web.settings, web.database, clock=web.clock)
    result = draft_edition(web.settings, web.database, clock=web.clock.later(minutes=1))
    assert result.number is not None
    return result.number


def post(client: TestClient, path: str, data: dict[str, Any] | None = None) -> Any:
    """Post a form from the staff pages as the browser would (with the CSRF token)."""
    token = csrf_token(client.get("/admin").text)
    return client.post(path, data={"csrf_token": token, **(data or {})}, follow_redirects=False)


def article_ids(web: WebHarness, number: int) -> list[int]:
    with web.database.session() as session:
        return [entry.article_id for entry in get_edition(session, number).entries]


# -- the guard -----------------------------------------------------------------------------


def admin_routes(web: WebHarness) -> list[tuple[str, str]]:
    """Every (method, path) under /admin, with sample values in the path."""
    found = []
    for route in api_routes(web.app.routes):
        if not route.path.startswith("/admin"):
            continue
        path = re.sub(r"\{[a-z_]+\}", "1", route.path)
        for method in sorted(route.methods or ()):
            found.append((method, path))
    return found


def test_every_admin_route_needs_a_session(web: WebHarness, edition: int) -> None:
    routes = admin_routes(web)
    # The login, and a new colleague's one-time link (its token is the proof), need none.
    protected = [(m, p) for m, p in routes if p not in ("/admin/login", "/admin/welcome/1")]
    # The pages this issue asks for are all there, so the loop below checks them.
    paths = {p for _, p in protected}
    for expected in (
        "/admin",
        "/admin/editions/1",
        "/admin/editions/1/send",
        "/admin/logout",
        "/admin/account",
        "/admin/account/password",
        "/admin/staff",
        "/admin/staff/1/link",
        "/admin/staff/1/remove",
    ):
        assert expected in paths
    assert len(protected) >= 9
    forged = web.client()
    forged.cookies.set("staff", "not-a-session-token")
    for client in (web.client(), forged):
        before = web.snapshot()
        for method, path in protected:
            response = client.request(method, path, follow_redirects=False)
            if method == "GET":
                assert response.status_code == 303, (method, path)
                assert response.headers["location"].startswith("/admin/login?next=/admin")
            else:
                assert response.status_code in (401, 403), (method, path)
        assert web.snapshot() == before


def test_the_login_leads_back_to_the_page_asked_for(web: WebHarness, edition: int) -> None:
    client = web.client()
    answer = client.get(f"/admin/editions/{edition}", follow_redirects=False)
    assert answer.headers["location"] == f"/admin/login?next=/admin/editions/{edition}"
    login_page = client.get(answer.headers["location"]).text
    token = csrf_token(login_page)
    assert f'value="/admin/editions/{edition}"' in login_page
    response = client.post(
        "/admin/login",
        data={
            "csrf_token": token,
            "name": "redactie",
            "password": PASSWORD,
            "next": f"/admin/editions/{edition}",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/editions/{edition}"


@pytest.mark.parametrize(
    "next_value", ["https://evil.example/", "//evil.example/admin", "/admin/../subscribe", "/x"]
)
def test_the_login_never_leads_off_the_staff_pages(web: WebHarness, next_value: str) -> None:
    client = web.client()
    token = csrf_token(client.get("/admin/login").text)
    response = client.post(
        "/admin/login",
        data={"csrf_token": token, "name": "redactie", "password": PASSWORD, "next": next_value},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/admin"


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(web: WebHarness) -> None:
    wrong = log_in(web.client(), password="niet het wachtwoord")
    unknown = log_in(web.client(ip="198.51.100.8"), name="niemand", password=PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "De naam of het wachtwoord klopt niet." in wrong.text
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", wrong.text) == strip.sub("", unknown.text)
    for response in (wrong, unknown):
        assert "staff=" not in response.headers.get("set-cookie", "")
    with web.database.session() as session:
        assert session.scalars(select(StaffSession)).all() == []


def test_the_login_form_needs_its_csrf_token(web: WebHarness) -> None:
    client = web.client()
    client.get("/admin/login")
    response = client.post(
        "/admin/login", data={"name": "redactie", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "staff=" not in response.headers.get("set-cookie", "")


def test_successful_logins_do_not_count(web: WebHarness) -> None:
    client = web.client()
    for _ in range(6):  # more than the limit (4), all with the right password
        assert log_in(client).status_code == 303
    assert log_in(client, password="fout fout fout fout").status_code == 401
    assert log_in(client).status_code == 303


def test_one_clients_failures_limit_that_client(web: WebHarness) -> None:
    client = web.client()
    for _ in range(4):
        assert log_in(client, password="fout fout fout fout").status_code == 401
    refused = log_in(client)  # even the right password: this client is limited
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) == 15 * 60
    assert "Probeer het over 15 minuten opnieuw." in refused.text
    assert "staff=" not in refused.headers.get("set-cookie", "")
    web.clock.advance(minutes=14, seconds=30)
    almost = log_in(client)
    assert almost.status_code == 429 and almost.headers["retry-after"] == "30"
    assert "Probeer het over 1 minuut opnieuw." in almost.text
    # After the window, the right password works again.
    web.clock.advance(minutes=1)
    assert log_in(client).status_code == 303


def test_strangers_failures_do_not_lock_out_the_right_person(web: WebHarness) -> None:
    # Ten wrong passwords for the name from many addresses: the name is under attack.
    for number in range(10):
        stranger = web.client(ip=f"203.0.113.{number + 10}")
        assert log_in(stranger, password="geraden geraden").status_code == 401
    # The right person, from their own computer, still gets in, again and again.
    for _ in range(3):
        assert log_in(web.client(ip="198.51.100.50")).status_code == 303
    # While the name is under attack, another address gets only a few tries at it.
    guesser = web.client(ip="203.0.113.99")
    for _ in range(3):
        assert log_in(guesser, password="nog een gok hier").status_code == 401
    assert log_in(guesser, password="en nog een gok").status_code == 429
    assert log_in(guesser).status_code == 429
    # That address may still log in with another name that is not under attack.
    assert log_in(guesser, name="niemand", password="x" * 12).status_code == 401


def test_a_session_ends_at_logout_and_after_idle_time(web: WebHarness) -> None:
    client = web.client()
    assert log_in(client).status_code == 303
    cookie = client.cookies.get("staff")
    assert cookie and client.get("/admin").status_code == 200
    response = post(client, "/admin/logout")
    assert response.status_code == 303
    stolen = web.client()
    stolen.cookies.set("staff", cookie)
    assert stolen.get("/admin", follow_redirects=False).status_code == 303

    assert log_in(client).status_code == 303
    web.clock.advance(minutes=59)
    assert client.get("/admin").status_code == 200  # in use: the idle clock restarts
    web.clock.advance(minutes=61)
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_http_only_and_stored_hashed(web: WebHarness) -> None:
    client = web.client()
    response = log_in(client)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    token = client.cookies.get("staff")
    with web.database.session() as session:
        stored = [row.token_hash for row in session.scalars(select(StaffSession))]
    assert stored and token not in stored


# -- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_shows_runs_counts_and_editions(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    web.confirmed("ouder@example.org")
    web.request("nieuw@example.org")
    with web.database.session() as session:
        session.add(
            Run(
                started_at=web.clock(),
                finished_at=web.clock(),
                trigger="schedule",
                outcome="failed",
                counts={},
                error="feed unreachable",
            )
        )
    page = staff.get("/admin").text
    assert "Volgende ronde" in page and "De ronde draait elke dinsdag om 09:00." in page
    assert "0 9 * * tue" not in page
    assert re.search(r"ingeschreven</th><td>1<", page)
    assert re.search(r"nog niet bevestigd</th><td>1<", page)
    assert f'href="/admin/editions/{edition}"' in page and "concept" in page
    assert "mislukt" in page and "feed unreachable" in page


# -- the review ------------------------------------------------------------------------------


def test_the_review_shows_the_mail_in_two_frames_and_as_text(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    page = staff.get(f"/admin/editions/{edition}").text
    assert page.count(f'src="/admin/editions/{edition}/preview.html"') == 2
    assert "preview-frame--desktop" in page and "preview-frame--phone" in page
    assert "Tekstversie" in page and "Beste Voorbeeld" in page
    preview = staff.get(f"/admin/editions/{edition}/preview.html")
    assert preview.status_code == 200
    policy = preview.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "script-src" not in policy
    assert "default-src 'none'" in policy
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"
    assert "<html" in preview.text
    # Every other staff page refuses to be framed.
    assert staff.get("/admin").headers["x-frame-options"] == "DENY"


def test_staff_change_subject_intro_and_articles(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    response = post(
        staff,
        f"/admin/editions/{edition}/text",
        {"subject": "Nieuws uit de beweging", "intro": "Hallo **allemaal**."},
    )
    assert response.status_code == 303
    page = staff.get(response.headers["location"]).text
    assert "De wijzigingen zijn opgeslagen." in page
    assert "Nieuws uit de beweging" in page
    assert (
        "Hallo <strong>allemaal</strong>."
        in staff.get(f"/admin/editions/{edition}/preview.html").text
    )

    first, second, *_ = article_ids(web, edition)
    post(staff, f"/admin/editions/{edition}/articles/{second}", {"action": "up"})
    assert article_ids(web, edition)[:2] == [second, first]
    post(staff, f"/admin/editions/{edition}/articles/{first}", {"action": "remove"})
    assert first not in article_ids(web, edition)


def test_a_bad_subject_is_refused_and_nothing_changes(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    before = web.snapshot(), article_ids(web, edition)
    response = post(staff, f"/admin/editions/{edition}/text", {"subject": " ", "intro": "x"})
    assert response.status_code == 409
    assert "the subject is empty" in response.text
    unknown = post(staff, f"/admin/editions/{edition}/articles/999999", {"action": "remove"})
    assert unknown.status_code == 409
    odd = post(staff, f"/admin/editions/{edition}/articles/1", {"action": "explode"})
    assert odd.status_code == 400
    assert (web.snapshot(), article_ids(web, edition)) == before
    assert staff.get("/admin/editions/424242").status_code == 404


def test_a_test_copy_goes_to_the_staff_only(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    response = post(staff, f"/admin/editions/{edition}/test", {"address": STAFF_EMAIL})
    assert response.status_code == 303
    assert "De testmail is verstuurd." in staff.get(response.headers["location"]).text
    [message] = web.messages_to(STAFF_EMAIL)
    assert "TEST" in message["Subject"].upper()
    refused = post(staff, f"/admin/editions/{edition}/test", {"address": "iemand@example.org"})
    assert refused.status_code == 400
    assert web.messages_to("iemand@example.org") == []
    with web.database.session() as session:
        assert get_edition(session, edition).state == "draft"


def newsletters_to(web: WebHarness, address: str) -> list[EmailMessage]:
    """The editions `address` received (not the confirmation mail of signing up)."""
    return [message for message in web.messages_to(address) if message["List-Id"]]


def wait_until_sent(staff: TestClient, number: int) -> str:
    def ended() -> str | None:
        page = staff.get(f"/admin/editions/{number}/progress").text
        return page if "Klaar" in page or "gestopt" in page else None

    return wait_until(ended, what=f"the send of edition {number} to end")


def test_approve_and_send_runs_in_the_background_and_ends_the_editing(
    web: WebHarness, staff: TestClient, edition: int
) -> None:
    readers = ["lezer1@example.org", "lezer2@example.org"]
    for address in readers:
        web.confirmed(address)
    unconfirmed = post(staff, f"/admin/editions/{edition}/send", {})
    assert unconfirmed.status_code == 400
    assert "Vink eerst aan" in unconfirmed.text
    response = post(staff, f"/admin/editions/{edition}/send", {"confirm": "yes"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/editions/{edition}/progress"
    page = wait_until_sent(staff, edition)
    assert "Klaar" in page and 'data-state="sent">2<' in page
    for address in readers:
        assert len(newsletters_to(web, address)) == 1
    with web.database.session() as session:
        assert get_edition(session, edition).state == "sent"
        assert state_counts(session, edition).sent == 2

    before = web.snapshot(), article_ids(web, edition)
    review = staff.get(f"/admin/editions/{edition}").text
    assert "kan niet meer worden aangepast" in review and 'name="subject"' not in review
    changed = post(staff, f"/admin/editions/{edition}/text", {"subject": "Anders", "intro": ""})
    assert changed.status_code == 409
    again = post(staff, f"/admin/editions/{edition}/send", {"confirm": "yes"})
    assert again.status_code == 409
    assert (web.snapshot(), article_ids(web, edition)) == before
    for address in readers:
        assert len(newsletters_to(web, address)) == 1


def test_an_edition_without_articles_is_shown_without_a_mail(
    web: WebHarness, staff: TestClient
) -> None:
    # `newsletter draft --force` with nothing new makes an empty draft.
    result = draft_edition(web.settings, web.database, clock=web.clock, force=True)
    assert result.number is not None
    page = staff.get(f"/admin/editions/{result.number}")
    assert page.status_code == 200
    assert "Deze editie heeft geen artikelen" in page.text
    assert "Goedkeuren en versturen" not in page.text
    assert staff.get(f"/admin/editions/{result.number}/preview.html").status_code == 404


def test_refusals_under_admin_lead_back_to_the_staff_pages(
    web: WebHarness, staff: TestClient
) -> None:
    for response in (
        staff.get("/admin/editions/424242"),  # an edition that does not exist
        staff.get("/admin/nothing-here"),  # a page that does not exist
        staff.post("/admin/logout", data={}),  # a form without its CSRF token
    ):
        assert response.status_code in (403, 404), response.status_code
        assert 'href="/admin"' in response.text
        assert 'href="/subscribe"' not in response.text
    # The public pages still lead to the sign-up page.
    public = web.client().get("/nothing-here")
    assert public.status_code == 404 and 'href="/subscribe"' in public.text
