"""The sign-up form on another website: posted cross-site to /embed/subscribe, no cookie."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.web.security import CONTENT_SECURITY_POLICY
from tests.support.clock import FixedClock
from tests.support.webharness import (
    BASE_URL,
    WebHarness,
    csrf_token,
    links_in,
    signup,
    web_harness,
)

WEBSITE = "https://www.rvjeugdzorg.nl"
ELSEWHERE = "https://nep-jeugdzorg.example"
PATH = "/embed/subscribe"


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(
        make_settings, clock, web={"embed_origins": [WEBSITE], "signup_limit_per_ip": 5}
    ) as harness:
        yield harness


def embed_post(web: WebHarness, data: dict[str, Any], **headers: str) -> Any:
    """Post the pasted form as a browser on another site would: no cookie, no CSRF field."""
    client = web.client()
    return client.post(PATH, data=data, headers=headers)


def nothing_happened(web: WebHarness) -> bool:
    return web.snapshot()["subscribers"] == [] and web.smtp.received == []


# -- from a site in embed_origins ------------------------------------------------------------


def test_a_post_from_the_website_gets_the_check_mail_page_and_a_confirmation(
    web: WebHarness,
) -> None:
    response = embed_post(
        web,
        {"email": "ouder@example.org", "name": "Sanne", "themes": ["doe-je-mee"]},
        Origin=WEBSITE,
    )
    assert response.status_code == 200
    assert "<h1>Kijk in je mailbox</h1>" in response.text
    assert web.smtp.delivered_to() == ["ouder@example.org"]
    [message] = web.messages_to("ouder@example.org")
    assert any(url.startswith(f"{BASE_URL}/confirm/") for url in links_in(message))
    person = web.people.show("ouder@example.org")
    assert person.subscriber.status == "pending"
    assert person.subscriber.name == "Sanne"
    [requested] = [e for e in person.consent_log if e.event == "subscribe_requested"]
    assert requested.source == "form"


def test_the_answer_is_the_one_the_sign_up_page_gives(web: WebHarness) -> None:
    embedded = embed_post(web, {"email": "een@example.org"}, Origin=WEBSITE)
    normal = signup(web.client(), "twee@example.org")
    assert embedded.text == normal.text
    assert "set-cookie" not in embedded.headers


def test_the_answer_keeps_the_security_headers(web: WebHarness) -> None:
    for response in (
        embed_post(web, {"email": "ouder@example.org"}, Origin=WEBSITE),
        embed_post(web, {"email": "ouder@example.org"}, Origin=ELSEWHERE),
        embed_post(web, {"email": "fout"}, Origin=WEBSITE),
    ):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "access-control-allow-origin" not in response.headers


def test_the_referer_counts_when_there_is_no_origin(web: WebHarness) -> None:
    response = embed_post(web, {"email": "ouder@example.org"}, Referer=f"{WEBSITE}/praat-mee")
    assert response.status_code == 200
    assert web.smtp.delivered_to() == ["ouder@example.org"]


def test_origins_compare_as_browsers_send_them(web: WebHarness) -> None:
    response = embed_post(
        web, {"email": "ouder@example.org"}, Origin="HTTPS://WWW.rvjeugdzorg.nl:443"
    )
    assert response.status_code == 200


def test_a_post_without_origin_or_referer_is_accepted(web: WebHarness) -> None:
    # Privacy tools strip both; the confirmation mail is the proof.
    response = embed_post(web, {"email": "ouder@example.org"})
    assert response.status_code == 200
    assert web.smtp.delivered_to() == ["ouder@example.org"]


def test_the_site_itself_may_post_there(web: WebHarness) -> None:
    response = embed_post(web, {"email": "ouder@example.org"}, Origin=BASE_URL)
    assert response.status_code == 200


# -- from anywhere else ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": ELSEWHERE},
        {"Origin": "http://www.rvjeugdzorg.nl"},  # not the same scheme
        {"Origin": "https://www.rvjeugdzorg.nl:8443"},  # not the same port
        {"Origin": "https://rvjeugdzorg.nl"},  # not the same host
        {"Origin": "null"},  # a page that hides where it is (no-referrer, a sandbox)
        {"Origin": "niet een origin"},
        {"Referer": f"{ELSEWHERE}/praat-mee"},
        {"Origin": ELSEWHERE, "Referer": f"{WEBSITE}/praat-mee"},  # Origin comes first
    ],
)
def test_a_post_from_another_site_is_refused_with_a_clear_page(
    web: WebHarness, headers: dict[str, str]
) -> None:
    response = embed_post(web, {"email": "ouder@example.org"}, **headers)
    assert response.status_code == 403
    text = html.unescape(response.text)
    assert "mag geen aanmeldingen doorsturen" in text
    assert 'href="/subscribe"' in response.text
    assert "Er is niets opgeslagen en er is geen mail verstuurd." in text
    assert nothing_happened(web)


def test_the_refusal_names_the_site_it_came_from(web: WebHarness) -> None:
    response = embed_post(web, {"email": "ouder@example.org"}, Origin=ELSEWHERE)
    assert "nep-jeugdzorg.example" in response.text


def test_refused_posts_do_not_use_up_the_visitors_sign_up_limit(web: WebHarness) -> None:
    for _ in range(10):
        assert embed_post(web, {"email": "ouder@example.org"}, Origin=ELSEWHERE).status_code == 403
    response = embed_post(web, {"email": "ouder@example.org"}, Origin=WEBSITE)
    assert response.status_code == 200


def test_without_embed_origins_every_other_site_is_refused(
    make_settings: Callable[..., Settings], clock: FixedClock
) -> None:
    with web_harness(make_settings, clock) as web:
        refused = embed_post(web, {"email": "ouder@example.org"}, Origin=WEBSITE)
        assert refused.status_code == 403
        assert nothing_happened(web)
        own = embed_post(web, {"email": "ouder@example.org"}, Origin=BASE_URL)
        assert own.status_code == 200


# -- the guards of the sign-up page ----------------------------------------------------------


def test_a_filled_honeypot_gets_the_usual_answer_and_nothing_happens(web: WebHarness) -> None:
    robot = embed_post(web, {"email": "robot@example.org", "opmerking": "Koop nu!"}, Origin=WEBSITE)
    human = embed_post(web, {"email": "mens@example.org"}, Origin=WEBSITE)
    assert robot.status_code == human.status_code == 200
    assert robot.text == human.text
    assert web.smtp.delivered_to() == ["mens@example.org"]
    assert len(web.snapshot()["subscribers"]) == 1


def test_the_sign_up_limit_per_client_applies(web: WebHarness) -> None:
    client = web.client()
    for number in range(5):
        answer = client.post(PATH, data={"email": f"lezer{number}@example.org"})
        assert answer.status_code == 200
    refused = client.post(PATH, data={"email": "nog-een@example.org"})
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert "Even wachten" in refused.text


def test_the_mail_limit_per_address_applies(web: WebHarness) -> None:
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"):
        web.client(ip=ip).post(
            PATH, data={"email": "doelwit@example.org"}, headers={"Origin": WEBSITE}
        )
    limit = web.settings.subscribers.max_confirmation_mails_per_day
    assert len(web.messages_to("doelwit@example.org")) == limit < 5


# -- wrong input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": ""}, "Vul je e-mailadres in."),
        ({"email": "ouder@"}, "Dit is geen geldig e-mailadres."),
        ({"email": "ouder@example.org", "themes": ["geheim"]}, "Kies alleen thema's"),
        ({"email": "ouder@example.org", "name": "Kijk op https://spam.example"}, "zonder links"),
    ],
)
def test_wrong_input_shows_the_sign_up_page_with_the_error(
    web: WebHarness, fields: dict[str, Any], message: str
) -> None:
    response = embed_post(web, fields, Origin=WEBSITE)
    assert response.status_code == 422
    assert message in html.unescape(response.text)
    assert "Er klopt iets nog niet" in response.text
    assert nothing_happened(web)


def test_wrong_input_keeps_what_was_typed_and_can_be_sent_again_here(web: WebHarness) -> None:
    client = web.client()
    response = client.post(
        PATH,
        data={"email": "ouder@exmaple", "name": "Sanne", "themes": ["doe-je-mee"]},
        headers={"Origin": WEBSITE},
    )
    assert response.status_code == 422
    assert 'value="ouder@exmaple"' in response.text
    assert 'value="Sanne"' in response.text
    assert 'value="doe-je-mee" checked' in response.text
    assert '<form method="post" action="/subscribe"' in response.text
    assert "<script" not in response.text
    # The page is the normal sign-up form of this site: corrected, it goes through there.
    again = client.post(
        "/subscribe",
        data={
            "csrf_token": csrf_token(response.text),
            "email": "ouder@example.org",
            "name": "Sanne",
            "themes": ["doe-je-mee"],
        },
    )
    assert again.status_code == 200
    assert web.smtp.delivered_to() == ["ouder@example.org"]


def test_what_was_typed_comes_back_escaped(web: WebHarness) -> None:
    response = embed_post(web, {"email": "fout", "name": '"><script>alert(1)</script>'})
    assert response.status_code == 422
    assert "<script>" not in response.text
    assert "&#34;&gt;&lt;script&gt;" in response.text


def test_a_form_that_cannot_be_read_is_refused_without_a_trace(web: WebHarness) -> None:
    response = web.client().post(
        PATH,
        content=b'--x\r\nContent-Disposition: form-data; name="email"; filename="a"\r\n'
        b"\r\nx\r\n--x--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x", "Origin": WEBSITE},
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text
    assert nothing_happened(web)


def test_only_post_is_answered(web: WebHarness) -> None:
    response = web.client().get(PATH)
    assert response.status_code == 405


# -- the normal sign-up keeps its CSRF check -------------------------------------------------


def test_the_sign_up_page_still_needs_its_csrf_token(web: WebHarness) -> None:
    response = web.client().post(
        "/subscribe", data={"email": "ouder@example.org"}, headers={"Origin": WEBSITE}
    )
    assert response.status_code == 403
    assert nothing_happened(web)
