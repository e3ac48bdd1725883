"""Staff accounts in /admin: your own password, and for admins inviting, removing and the
login history; an editor gets 403 on every admin-only route."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.staff.accounts import StaffInvitation, StaffLogin, StaffUser, add_user
from tests.support.clock import FixedClock
from tests.support.webharness import (
    STAFF_PASSWORD,
    WebHarness,
    api_routes,
    csrf_token,
    links_in,
    log_in,
    web_harness,
)

EDITOR_PASSWORD = "de redacteur typt dit"
NEW_PASSWORD = "een nieuw en lang wachtwoord"


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(make_settings, clock, web={"login_limit": 50}) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", STAFF_PASSWORD, email="redactie@example.org", now=clock())
            add_user(
                session,
                "lotte",
                EDITOR_PASSWORD,
                email="lotte@example.org",
                now=clock(),
                role="editor",
            )
        yield harness


@pytest.fixture
def editor(web: WebHarness) -> TestClient:
    client = web.client(ip="198.51.100.20")
    assert log_in(client, "lotte", EDITOR_PASSWORD).status_code == 303
    return client


def post(client: TestClient, path: str, data: dict[str, Any], *, page: str = "/admin") -> Any:
    token = csrf_token(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def staff_rows(web: WebHarness) -> list[tuple[Any, ...]]:
    with web.database.session() as session:
        users = [(u.name, u.role, u.password_hash) for u in session.scalars(select(StaffUser))]
        links = [(i.token_hash, i.user_id) for i in session.scalars(select(StaffInvitation))]
    return [*users, *links]


def invitation_link(web: WebHarness, address: str) -> str:
    [mail] = web.messages_to(address)
    return next(url for url in links_in(mail) if "/admin/welcome/" in url)


def test_an_admin_invites_a_colleague_who_sets_a_password_once(
    web: WebHarness, staff: TestClient
) -> None:
    response = post(
        staff, "/admin/staff", {"name": "Anouk", "email": "anouk@example.org", "role": "editor"}
    )
    assert response.status_code == 303
    page = staff.get(response.headers["location"]).text
    assert "anouk is toegevoegd" in page and "uitgenodigd; de link werkt tot" in page
    url = invitation_link(web, "anouk@example.org")
    token = url.rsplit("/", 1)[1]
    with web.database.session() as session:
        [stored] = session.scalars(select(StaffInvitation)).all()
    assert token not in stored.token_hash  # only its hash is kept
    # Nobody can log in as anouk before the password is chosen.
    assert log_in(web.client(ip="198.51.100.30"), "anouk", "").status_code == 401

    colleague = web.client(ip="198.51.100.31")
    path = url.removeprefix("http://testserver")
    form = colleague.get(path)
    assert (
        form.status_code == 200 and "Je naam om in te loggen is <strong>anouk</strong>" in form.text
    )
    mismatch = post(
        colleague,
        path,
        {"new_password": NEW_PASSWORD, "repeat_password": "iets anders"},
        page=path,
    )
    assert mismatch.status_code == 400 and "niet hetzelfde" in mismatch.text
    done = post(
        colleague,
        path,
        {"new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD},
        page=path,
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin/login?welcome=1"
    assert "Je wachtwoord is opgeslagen" in colleague.get(done.headers["location"]).text
    assert log_in(colleague, "anouk", NEW_PASSWORD).status_code == 303
    # The link worked once.
    again = web.client(ip="198.51.100.32").get(path)
    assert again.status_code == 404 and "Deze link werkt niet meer" in again.text
    assert colleague.get("/admin/staff").status_code == 403  # an editor


def test_an_invitation_link_expires_after_48_hours(web: WebHarness, staff: TestClient) -> None:
    post(staff, "/admin/staff", {"name": "sem", "email": "sem@example.org", "role": "admin"})
    path = invitation_link(web, "sem@example.org").removeprefix("http://testserver")
    web.clock.advance(hours=47)
    assert web.client().get(path).status_code == 200
    web.clock.advance(hours=1)
    assert web.client().get(path).status_code == 404
    assert log_in(staff).status_code == 303  # the admin's own session ran out meanwhile
    assert "de link is verlopen" in staff.get("/admin/staff").text
    # A new link works; the old one stays dead.
    assert post(staff, "/admin/staff/sem/link", {}).status_code == 303
    newest = web.messages_to("sem@example.org")[-1]
    fresh = next(url for url in links_in(newest) if "/admin/welcome/" in url)
    assert fresh.removeprefix("http://testserver") != path
    assert web.client().get(fresh.removeprefix("http://testserver")).status_code == 200


def test_a_bad_invitation_is_refused_and_stores_nothing(web: WebHarness, staff: TestClient) -> None:
    before = staff_rows(web)
    for data, status, words in (
        ({"name": "An Ouk", "email": "a@example.org", "role": "editor"}, 400, "kleine letters"),
        ({"name": "anouk", "email": "geen adres", "role": "editor"}, 400, "geen geldig"),
        ({"name": "anouk", "email": "a@example.org", "role": "baas"}, 400, "Kies een rol"),
        ({"name": "lotte", "email": "a@example.org", "role": "editor"}, 409, "al een account"),
    ):
        response = post(staff, "/admin/staff", data)
        assert response.status_code == status and words in response.text
        assert f'value="{data["name"]}"' in response.text  # what was typed stays
    assert staff_rows(web) == before
    assert web.smtp.received == []


def admin_only_routes(web: WebHarness) -> list[tuple[str, str]]:
    found = []
    for route in api_routes(web.app.routes):
        if route.path.startswith("/admin/staff"):
            path = re.sub(r"\{[a-z_]+\}", "redactie", route.path)
            found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def test_an_editor_gets_403_on_every_admin_only_route(web: WebHarness, editor: TestClient) -> None:
    routes = admin_only_routes(web)
    assert {path for _, path in routes} == {
        "/admin/staff",
        "/admin/staff/redactie/link",
        "/admin/staff/redactie/remove",
    }
    before = staff_rows(web)
    for method, path in routes:
        data = {"name": "x", "email": "x@example.org", "role": "admin", "confirm": "yes"}
        response = editor.get(path) if method == "GET" else post(editor, path, data)
        assert response.status_code == 403, (method, path)
        assert "Alleen voor beheerders" in response.text
    assert staff_rows(web) == before
    assert web.smtp.received == []
    assert 'href="/admin/staff"' not in editor.get("/admin/account").text


def test_an_admin_removes_a_colleague_but_not_themselves(
    web: WebHarness, staff: TestClient, editor: TestClient
) -> None:
    unchecked = post(staff, "/admin/staff/lotte/remove", {})
    assert unchecked.status_code == 400 and "Vink eerst aan" in unchecked.text
    assert post(staff, "/admin/staff/redactie/remove", {"confirm": "yes"}).status_code == 409
    removed = post(staff, "/admin/staff/lotte/remove", {"confirm": "yes"})
    assert removed.status_code == 303
    assert "Het account van lotte is verwijderd" in staff.get(removed.headers["location"]).text
    assert editor.get("/admin", follow_redirects=False).status_code == 303  # logged out
    assert [row[0] for row in staff_rows(web)] == ["redactie"]


def test_staff_change_their_own_password(web: WebHarness, editor: TestClient) -> None:
    elsewhere = web.client(ip="198.51.100.21")
    assert log_in(elsewhere, "lotte", EDITOR_PASSWORD).status_code == 303
    page = "/admin/account"
    wrong = post(
        editor,
        "/admin/account/password",
        {
            "current_password": "niet mijn wachtwoord",
            "new_password": NEW_PASSWORD,
            "repeat_password": NEW_PASSWORD,
        },
        page=page,
    )
    assert wrong.status_code == 400 and "Je huidige wachtwoord klopt niet" in wrong.text
    short = post(
        editor,
        "/admin/account/password",
        {"current_password": EDITOR_PASSWORD, "new_password": "kort", "repeat_password": "kort"},
        page=page,
    )
    assert short.status_code == 400 and "te kort" in short.text
    changed = post(
        editor,
        "/admin/account/password",
        {
            "current_password": EDITOR_PASSWORD,
            "new_password": NEW_PASSWORD,
            "repeat_password": NEW_PASSWORD,
        },
        page=page,
    )
    assert changed.status_code == 303
    assert "Je wachtwoord is gewijzigd" in editor.get(changed.headers["location"]).text
    assert editor.get("/admin").status_code == 200  # this browser stays logged in
    assert elsewhere.get("/admin", follow_redirects=False).status_code == 303
    assert log_in(web.client(ip="198.51.100.22"), "lotte", EDITOR_PASSWORD).status_code == 401
    assert log_in(web.client(ip="198.51.100.23"), "lotte", NEW_PASSWORD).status_code == 303


def test_the_login_history_keeps_when_whose_name_and_whether_it_worked(
    web: WebHarness, staff: TestClient
) -> None:
    log_in(web.client(ip="198.51.100.40"), "lotte", "verkeerd wachtwoord")
    log_in(web.client(ip="198.51.100.41"), "mijn-wachtwoord-per-ongeluk", "x" * 12)
    with web.database.session() as session:
        rows = [
            (r.name, r.succeeded)
            for r in session.scalars(select(StaffLogin).order_by(StaffLogin.id))
        ]
        columns = set(StaffLogin.__table__.columns.keys())
    assert rows == [("redactie", True), ("lotte", False), (None, False)]
    assert columns == {"id", "at", "name", "succeeded"}  # no address, no agent
    page = staff.get("/admin/staff").text
    assert "(geen bestaande naam)" in page and "mijn-wachtwoord" not in page
    assert "nee, verkeerd wachtwoord of naam" in page
    # After 90 days a login is forgotten.
    web.clock.advance(days=91)
    log_in(web.client(ip="198.51.100.42"))
    with web.database.session() as session:
        assert len(session.scalars(select(StaffLogin)).all()) == 1
