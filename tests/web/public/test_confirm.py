"""Confirming: the link in the mail shows a button, and only the button's POST confirms."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.support.webharness import WebHarness, csrf_token, signup, token_in, without_csrf


def test_the_confirm_link_shows_a_button_and_only_the_button_confirms(web: WebHarness) -> None:
    client = web.client()
    signup(client, "ouder@example.org", themes=["kampvuurgesprekken"])
    url = web.confirm_url_for("ouder@example.org")
    before = web.snapshot()
    page = client.get(url)
    assert page.status_code == 200
    assert "<h1>Aanmelding bevestigen</h1>" in page.text
    assert f'action="/confirm/{token_in(url)}"' in page.text
    assert web.snapshot() == before

    done = client.post(url, data={"csrf_token": csrf_token(page.text)})
    assert done.status_code == 200
    assert "Gelukt, je bent aangemeld" in done.text
    assert "ouder@example.org" in done.text
    assert "Kampvuurgesprekken" in done.text
    view = web.people.show("ouder@example.org")
    assert view.subscriber.status == "confirmed"
    preferences = [u for u in links_in_html(done.text) if "/preferences/" in u]
    assert preferences and client.get(preferences[0]).status_code == 200


def links_in_html(page: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', page)


def test_a_used_token_gets_the_unknown_link_page(web: WebHarness) -> None:
    client = web.client()
    signup(client, "ouder@example.org")
    url = web.confirm_url_for("ouder@example.org")
    token = csrf_token(client.get(url).text)
    assert client.post(url, data={"csrf_token": token}).status_code == 200
    before = web.snapshot()
    for response in (client.get(url), client.post(url, data={"csrf_token": token})):
        assert response.status_code == 404
        assert "Deze link werkt niet (meer)" in response.text
    assert web.snapshot() == before


def test_an_expired_token_gets_the_unknown_link_page_and_changes_nothing(
    web: WebHarness,
) -> None:
    client = web.client()
    signup(client, "ouder@example.org")
    url = web.confirm_url_for("ouder@example.org")
    token = csrf_token(client.get(url).text)
    web.clock.advance(hours=web.settings.subscribers.confirm_hours, seconds=1)
    before = web.snapshot()
    assert client.get(url).status_code == 404
    response = client.post(url, data={"csrf_token": token})
    assert response.status_code == 404
    assert "Deze link werkt niet (meer)" in response.text
    assert web.snapshot() == before


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character changed
        lambda t: t + "A",  # too long
        lambda t: "x" * 43,  # the right shape, not ours
        lambda t: "%00" + t,  # junk
        lambda t: "a" * 500,
    ],
)
def test_tampered_confirm_tokens_get_the_same_page_and_change_nothing(
    web: WebHarness, tamper: Callable[[str], str]
) -> None:
    client = web.client()
    signup(client, "ouder@example.org")
    token = token_in(web.confirm_url_for("ouder@example.org"))
    unknown = client.get("/confirm/" + "y" * 43)
    before = web.snapshot()
    path = "/confirm/" + tamper(token)
    shown = client.get(path)
    posted = client.post(path, data={"csrf_token": csrf_token(shown.text)})
    for response in (shown, posted):
        assert response.status_code == 404
        assert without_csrf(response.text) == without_csrf(unknown.text)
    assert web.snapshot() == before


def test_the_unknown_link_page_offers_a_new_mail(web: WebHarness) -> None:
    client = web.client()
    page = client.get("/confirm/" + "z" * 43)
    assert '<form method="post" action="/subscribe"' in page.text
    assert 'name="opmerking"' in page.text
    response = client.post(
        "/subscribe", data={"csrf_token": csrf_token(page.text), "email": "ouder@example.org"}
    )
    assert response.status_code == 200
    assert web.smtp.delivered_to() == ["ouder@example.org"]
