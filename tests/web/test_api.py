"""`POST /api/subscribe`: the same double opt-in as the form, as JSON, for programs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.webharness import WebHarness, links_in

ACCEPTED = {
    "status": "accepted",
    "message": "If the address can receive mail, a message is on its way to it.",
}


def post_json(web: WebHarness, body: Any, **options: Any) -> Any:
    return web.client().post("/api/subscribe", json=body, **options)


def test_a_sign_up_is_accepted_and_the_mail_goes_out(web: WebHarness) -> None:
    response = post_json(
        web, {"email": "ouder@example.org", "name": "Sanne", "themes": ["doe-je-mee"]}
    )
    assert response.status_code == 202
    assert response.json() == ACCEPTED
    [message] = web.messages_to("ouder@example.org")
    assert any("/confirm/" in url for url in links_in(message))
    log = web.people.show("ouder@example.org").consent_log
    assert log[0].event == "subscribe_requested"
    assert log[0].source == "api"
    assert log[0].consent_text.startswith("Ik wil de nieuwsbrief van")


def test_only_email_is_required(web: WebHarness) -> None:
    assert post_json(web, {"email": "ouder@example.org"}).status_code == 202
    assert post_json(web, {"email": "b@example.org", "name": None, "themes": None}).json() == (
        ACCEPTED
    )


def test_every_address_state_gets_the_same_answer(web: WebHarness) -> None:
    web.request("pending@example.org")
    web.confirmed("confirmed@example.org")
    web.unsubscribed("left@example.org")
    web.erased("erased@example.org")
    web.with_status("bounced@example.org", "bounced")
    web.with_status("complained@example.org", "complained")
    answers = []
    for email in (
        "new@example.org",
        "pending@example.org",
        "confirmed@example.org",
        "left@example.org",
        "erased@example.org",
        "bounced@example.org",
        "complained@example.org",
        "CONFIRMED@example.org",
    ):
        response = post_json(web, {"email": email})
        headers = {k: v for k, v in response.headers.items() if k != "date"}
        answers.append((response.status_code, headers, response.content))
    assert all(answer == answers[0] for answer in answers[1:])
    assert answers[0][0] == 202


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"email": ""}, {"email": "required"}),
        ({}, {"email": "required"}),
        ({"email": "ouder@"}, {"email": "invalid"}),
        ({"email": "ouder@example.org\r\nBcc: x@example.org"}, {"email": "invalid"}),
        (
            {"email": "ouder@example.org", "name": "Sanne\nBcc: x@example.org"},
            {"name": "not_a_name"},
        ),
        ({"email": "ouder@example.org", "name": "zie www.spam.example"}, {"name": "not_a_name"}),
        ({"email": "ouder@example.org", "name": "n" * 101}, {"name": "too_long"}),
        ({"email": "ouder@example.org", "themes": ["onbekend"]}, {"themes": "unknown"}),
        # The form's theme names are not the API's slugs.
        ({"email": "ouder@example.org", "themes": ["Doe je mee?"]}, {"themes": "unknown"}),
    ],
)
def test_invalid_values_get_422_with_codes(
    web: WebHarness, body: dict[str, Any], errors: dict[str, str]
) -> None:
    response = post_json(web, body)
    assert response.status_code == 422
    assert response.json()["errors"] == errors
    assert response.json()["message"]
    assert web.smtp.received == []
    assert web.snapshot()["subscribers"] == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"email": 42}, {"email": "wrong_type"}),
        ({"email": ["ouder@example.org"]}, {"email": "wrong_type"}),
        ({"email": "ouder@example.org", "themes": "doe-je-mee"}, {"themes": "wrong_type"}),
        ({"email": "ouder@example.org", "themes": [1, 2]}, {"themes": "wrong_type"}),
        ({"email": "ouder@example.org", "themes": {"a": 1}}, {"themes": "wrong_type"}),
        ({"email": "ouder@example.org", "name": {"first": "Sanne"}}, {"name": "wrong_type"}),
        ({"email": "ouder@example.org", "name": False}, {"name": "wrong_type"}),
        ({"email": "ouder@example.org", "admin": True}, {"admin": "unexpected"}),
        (["ouder@example.org"], {"body": "not_an_object"}),
        ("ouder@example.org", {"body": "not_an_object"}),
        (None, {"body": "not_an_object"}),
        ({"email": "\ud800@example.org"}, {"email": "invalid"}),
        ({"email": "ouder@example.org", "name": "\udfff"}, {"name": "not_a_name"}),
    ],
)
def test_wrong_shapes_and_types_get_422_saying_what_is_wrong(
    web: WebHarness, body: Any, errors: dict[str, str]
) -> None:
    response = web.client().post(
        "/api/subscribe",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == errors
    assert response.json()["message"]
    assert web.snapshot()["subscribers"] == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"email": "a@example.org",}',
        b"{'email': 'a@example.org'}",
        b"\xff\xfe\x00garbage",
        b"[" * 5000 + b"]" * 5000,
        b'{"email": "a@example.org"} trailing',
        b"NaN-ish",
    ],
)
def test_malformed_json_gets_400(web: WebHarness, body: bytes) -> None:
    response = web.client().post(
        "/api/subscribe", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_json",
        "message": "the body is not valid JSON (UTF-8)",
    }


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_only_json_is_accepted(web: WebHarness, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = web.client().post(
        "/api/subscribe", content=b'{"email": "ouder@example.org"}', headers=headers
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert web.smtp.received == []


def test_a_charset_on_the_content_type_is_fine(web: WebHarness) -> None:
    response = web.client().post(
        "/api/subscribe",
        content=b'{"email": "ouder@example.org"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202


def test_an_oversize_body_gets_413_unread(web: WebHarness) -> None:
    body = json.dumps({"email": "ouder@example.org", "name": "x" * 30_000}).encode()
    response = web.client().post(
        "/api/subscribe", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert web.snapshot()["subscribers"] == []


def test_other_methods_and_paths_answer_in_json(web: WebHarness) -> None:
    client = web.client()
    assert client.get("/api/subscribe").status_code == 405
    assert client.get("/api/subscribe").json()["error"] == "method_not_allowed"
    assert client.post("/api/nothing-here", json={}).status_code == 404
    assert client.post("/api/nothing-here", json={}).json()["error"] == "not_found"
    # No generated documentation: it would load scripts from a CDN.
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
SIGNUP_LIKE = st.fixed_dictionaries(
    {},
    optional={"email": JSON_VALUES, "name": JSON_VALUES, "themes": JSON_VALUES},
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=JSON_VALUES | SIGNUP_LIKE)
def test_junk_of_any_shape_never_gets_a_500(web: WebHarness, body: Any) -> None:
    client = web.client()
    response = client.post(
        "/api/subscribe",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (202, 422), (body, response.text)
    assert response.headers["content-type"] == "application/json"
    client.close()
    web.clients.remove(client)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.binary(max_size=300))
def test_junk_bytes_never_get_a_500(web: WebHarness, body: bytes) -> None:
    client = web.client()
    response = client.post(
        "/api/subscribe", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (202, 400, 422), (body, response.text)
    client.close()
    web.clients.remove(client)
