"""Headers on every response, the one cookie, CSRF, body limits and header injection."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from newsletter.core.config import Settings
from newsletter.web.security import CONTENT_SECURITY_POLICY
from tests.support.clock import FixedClock
from tests.support.webharness import BASE_URL, WebHarness, csrf_token, token_in, web_harness

EXPECTED_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def assert_secure_headers(response: Any) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)
    assert "server" not in response.headers


def test_the_policy_allows_nothing_from_elsewhere_and_no_scripts() -> None:
    directives = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"


# -- headers and cookies on every kind of answer ---------------------------------------


def every_kind_of_answer(web: WebHarness) -> list[Any]:
    """One response of each kind the app gives, each from a fresh browser."""
    view = web.confirmed("lezer@example.org")
    web.request("wacht@example.org")
    confirm_url = web.confirm_url_for("wacht@example.org")
    responses = []
    client = web.client()
    form = client.get("/subscribe")
    token = csrf_token(form.text)
    responses += [
        form,
        client.get("/", follow_redirects=False),
        client.post("/subscribe", data={"csrf_token": token, "email": "nieuw@example.org"}),
        client.post("/subscribe", data={"csrf_token": token, "email": "fout"}),
        client.post("/subscribe", data={"email": "nieuw@example.org"}),  # 403
        client.post("/subscribe", content=b"x" * 30_000),  # 413
        client.get(confirm_url),
        client.post(confirm_url, data={"csrf_token": token}),
        client.get(confirm_url),  # used now: the unknown link page
        client.get(view.preferences_url),
        client.post(view.preferences_url, data={"csrf_token": token, "action": "save"}),
        client.get(view.unsubscribe_url),
        client.post(view.unsubscribe_url),
        client.get("/nope"),
        client.put("/subscribe"),
        client.get("/static/site.css"),
        client.get("/static/favicon.svg"),
        client.get("/healthz"),
        client.post("/api/subscribe", json={"email": "api@example.org"}),
        client.post("/api/subscribe", json={"email": 1}),
        client.post("/api/subscribe", content=b"{", headers={"Content-Type": "application/json"}),
    ]
    return responses


def test_every_answer_carries_the_security_headers(web: WebHarness) -> None:
    responses = every_kind_of_answer(web)
    statuses = {response.status_code for response in responses}
    assert statuses >= {200, 202, 303, 400, 403, 404, 405, 413, 422}
    for response in responses:
        assert_secure_headers(response)


def test_pages_are_never_stored_only_the_static_files_are_cached(web: WebHarness) -> None:
    for response in every_kind_of_answer(web):
        if "/static/" in str(response.url):
            assert response.headers["cache-control"].startswith("public, max-age=")
        else:
            assert response.headers["cache-control"] == "no-store", response.url


def test_the_csrf_cookie_is_the_only_cookie_ever_set(web: WebHarness) -> None:
    cookies = []
    for response in every_kind_of_answer(web):
        cookies += response.headers.get_list("set-cookie")
    assert cookies
    assert all(cookie.startswith("csrf=") for cookie in cookies), cookies


def test_the_csrf_cookie_is_httponly_strict_and_session_only(web: WebHarness) -> None:
    response = web.client().get("/subscribe")
    [cookie] = response.headers.get_list("set-cookie")
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    assert name_value == f"csrf={csrf_token(response.text)}"
    assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=strict"]


def test_on_https_the_cookie_is_secure_and_host_only(
    make_settings: Callable[..., Settings], clock: FixedClock
) -> None:
    with web_harness(make_settings, clock, site={"base_url": "https://nieuws.example"}) as web:
        client = TestClient(web.app, base_url="https://testserver")
        web.clients.append(client)
        page = client.get("/subscribe")
        [cookie] = page.headers.get_list("set-cookie")
        name_value, *attributes = [part.strip() for part in cookie.split(";")]
        assert name_value.startswith("__Host-csrf=")
        assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=strict", "Secure"]
        response = client.post(
            "/subscribe", data={"csrf_token": csrf_token(page.text), "email": "a@example.org"}
        )
        assert response.status_code == 200
        assert web.smtp.delivered_to() == ["a@example.org"]


def test_a_browser_that_has_the_cookie_keeps_its_token(web: WebHarness) -> None:
    client = web.client()
    first = client.get("/subscribe")
    second = client.get("/subscribe")
    assert csrf_token(first.text) == csrf_token(second.text)
    assert "set-cookie" not in second.headers


# -- CSRF --------------------------------------------------------------------------------


def csrf_attempts(web: WebHarness, path: str, data: dict[str, str]) -> list[Any]:
    """Posts to `path` with a missing cookie, a missing field and mismatched tokens."""
    victim = web.client()
    token = csrf_token(victim.get("/subscribe").text)
    stranger = web.client(ip="192.0.2.99")
    other = csrf_token(stranger.get("/subscribe").text)
    no_cookie = web.client(ip="192.0.2.98")
    return [
        no_cookie.post(path, data={"csrf_token": token, **data}),  # field, no cookie
        victim.post(path, data=data),  # cookie, no field
        victim.post(path, data={"csrf_token": other, **data}),  # both, not the same
        victim.post(path, data={"csrf_token": "", **data}),
        victim.post(path, data={"csrf_token": token[:-1], **data}),
        victim.post(path, data={"csrf_token": "é" * 43, **data}),
        victim.post(path, data={"csrf_token": [token, other], **data}),
    ]


def test_sign_up_without_the_right_csrf_token_is_refused(web: WebHarness) -> None:
    for response in csrf_attempts(web, "/subscribe", {"email": "ouder@example.org"}):
        assert response.status_code == 403
        assert "Dit formulier is verlopen" in response.text
        assert "Er is niets opgeslagen" in response.text
    assert web.snapshot()["subscribers"] == []
    assert web.smtp.received == []


def test_confirming_without_the_right_csrf_token_is_refused(web: WebHarness) -> None:
    web.request("ouder@example.org")
    url = web.confirm_url_for("ouder@example.org")
    before = web.snapshot()
    for response in csrf_attempts(web, url, {}):
        assert response.status_code == 403
    assert web.snapshot() == before
    assert web.flows.pending_confirmation(token_in(url)) is not None


@pytest.mark.parametrize(
    "data",
    [
        {"action": "save", "name": "Aangepast"},
        {"action": "unsubscribe"},
        {"action": "change_email", "new_email": "ander@example.org"},
    ],
)
def test_preferences_without_the_right_csrf_token_are_refused(
    web: WebHarness, data: dict[str, str]
) -> None:
    view = web.confirmed("ouder@example.org", name="Sanne")
    sent = len(web.smtp.received)
    before = web.snapshot()
    for response in csrf_attempts(web, view.preferences_url, data):
        assert response.status_code == 403
    assert web.snapshot() == before
    assert len(web.smtp.received) == sent


# -- bodies ------------------------------------------------------------------------------


def test_an_oversize_form_gets_a_dutch_413_unread(web: WebHarness) -> None:
    client = web.client()
    token = csrf_token(client.get("/subscribe").text)
    response = client.post(
        "/subscribe",
        data={"csrf_token": token, "email": "ouder@example.org", "name": "x" * 25_000},
    )
    assert response.status_code == 413
    assert "Dat is te veel tekst" in response.text
    assert web.snapshot()["subscribers"] == []


def test_an_oversize_body_without_a_length_is_refused_too(web: WebHarness) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b"name=" + b"x" * 1000 + b"&"

    response = web.client().post(
        "/subscribe",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (
            b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na\r\n',
            "multipart/form-data; boundary=x",
        ),
        (
            b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
            b"\r\nabc\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
        ),
        (b"&".join(b"f%d=1" % n for n in range(200)), "application/x-www-form-urlencoded"),
        (b"\x00\xff\xfe" * 100, "application/x-www-form-urlencoded"),
        (b"email=a%ZZ", "application/x-www-form-urlencoded"),
        (json.dumps({"email": "a@example.org"}).encode(), "application/json"),
    ],
)
def test_unreadable_forms_never_get_a_500(
    web: WebHarness, content: bytes, content_type: str
) -> None:
    client = web.client()
    client.get("/subscribe")
    for path in ("/subscribe", "/confirm/" + "x" * 43, "/preferences/x.y"):
        response = client.post(path, content=content, headers={"Content-Type": content_type})
        assert response.status_code in (400, 403), (path, response.status_code)
    assert web.snapshot()["subscribers"] == []


# -- header injection --------------------------------------------------------------------


INJECTIONS = [
    {"email": "ouder@example.org\r\nBcc: slachtoffer@example.org"},
    {"email": "ouder@example.org\nSubject: Gratis"},
    {"email": "ouder@example.org", "name": "Sanne\r\nBcc: slachtoffer@example.org"},
    {"email": "ouder@example.org", "name": "Sanne\rTo: slachtoffer@example.org"},
    {"email": "ouder@example.org", "name": "Sanne\u2028Bcc: slachtoffer@example.org"},
    {"email": "ouder@example.org", "name": "Sanne\x85Bcc: slachtoffer@example.org"},
    {"email": "ouder@example.org", "name": "=?utf-8?q?Bcc=3A_slachtoffer@example.org?="},
    {"email": "ouder@example.org", "name": "Win! https://spam.example"},
    {"email": "ouder@example.org", "name": '<a href="https://spam.example">klik</a>'},
    {"email": '"slachtoffer@example.org\r\n"@example.org'},
]


def test_header_injection_never_reaches_a_mail(web: WebHarness) -> None:
    client = web.client()
    token = csrf_token(client.get("/subscribe").text)
    for fields in INJECTIONS:
        form = client.post("/subscribe", data={"csrf_token": token, **fields})
        api = client.post("/api/subscribe", json=fields)
        assert form.status_code == 400, fields
        assert api.status_code == 422, fields
    assert web.smtp.received == []
    assert web.snapshot()["subscribers"] == []


def test_an_accepted_sign_up_mails_only_the_bare_address(web: WebHarness) -> None:
    client = web.client()
    token = csrf_token(client.get("/subscribe").text)
    client.post(
        "/subscribe",
        data={"csrf_token": token, "email": "  Ouder@Example.ORG ", "name": "Sanne Ölçek"},
    )
    client.post("/api/subscribe", json={"email": "api@example.org", "name": "Jip"})
    assert sorted(web.smtp.delivered_to()) == ["Ouder@example.org", "api@example.org"]
    for item in web.smtp.received:
        message = item.message()
        assert message.get_all("To") == item.recipients
        assert message.get_all("Cc") is None
        assert message.get_all("Bcc") is None
        headers = "\n".join(f"{name}: {value}" for name, value in message.items())
        assert "Sanne" not in headers and "Jip" not in headers
        assert "Sanne" not in item.data.decode("utf-8", "replace")


# -- a crash still answers with our page and our headers ---------------------------------


def test_a_broken_template_gives_a_dutch_500_with_the_headers(
    make_settings: Callable[..., Settings], clock: FixedClock, tmp_path: Path
) -> None:
    override = tmp_path / "templates"
    (override / "web").mkdir(parents=True)
    (override / "web" / "check_mail.html.j2").write_text("{{ undefined_value.oops }}")
    with web_harness(make_settings, clock, templates={"dir": str(override)}) as web:
        client = TestClient(web.app, base_url=BASE_URL, raise_server_exceptions=False)
        web.clients.append(client)
        token = csrf_token(client.get("/subscribe").text)
        response = client.post("/subscribe", data={"csrf_token": token, "email": "a@example.org"})
        assert response.status_code == 500
        assert "Er ging iets mis aan onze kant" in response.text
        assert "undefined_value" not in response.text
        assert_secure_headers(response)
        assert response.headers["cache-control"] == "no-store"
