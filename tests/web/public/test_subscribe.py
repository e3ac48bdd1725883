"""The sign-up form: what it asks, stores and mails, and that it tells no one who is on the list."""

from __future__ import annotations

import html
from typing import Any

import pytest

from tests.support.webharness import WebHarness, links_in, signup, without_csrf

# -- the form --------------------------------------------------------------------------


def test_root_leads_to_the_form(web: WebHarness) -> None:
    response = web.client().get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/subscribe"


def test_the_form_is_dutch_and_has_every_field(web: WebHarness) -> None:
    response = web.client().get("/subscribe")
    assert response.status_code == 200
    page = response.text
    assert '<html lang="nl">' in page
    assert '<label for="email">E-mailadres</label>' in page
    assert 'id="name" name="name"' in page
    for slug, theme in web.settings.themes.items():
        assert f'name="themes" value="{slug}"' in page
        assert f'<label for="theme-{slug}">{theme.name}</label>' in page
    assert "Ik wil de nieuwsbrief van Radicale vernieuwing jeugdzorg ontvangen." in page
    assert "Wat we van je bewaren" in page
    assert "Geen trackingpixels" in page
    assert 'name="csrf_token"' in page
    assert "<script" not in page


def test_the_honeypot_is_hidden_from_people(web: WebHarness) -> None:
    page = web.client().get("/subscribe").text
    assert '<div class="hp" aria-hidden="true">' in page
    field = page[page.index('<input type="text" id="opmerking"') :].split(">", 1)[0]
    assert 'tabindex="-1"' in field
    assert 'autocomplete="off"' in field
    css = web.client().get("/static/site.css").text
    assert ".hp {\n  position: absolute;\n  left: -10000px;" in css


def test_signing_up_sends_a_confirmation_mail_after_the_answer(web: WebHarness) -> None:
    client = web.client()
    response = signup(client, "ouder@example.org", name="Sanne", themes=["doe-je-mee"])
    assert response.status_code == 200
    assert "Kijk in je mailbox" in response.text
    assert web.smtp.delivered_to() == ["ouder@example.org"]
    [message] = web.messages_to("ouder@example.org")
    assert any("/confirm/" in url for url in links_in(message))
    [row] = web.snapshot()["subscribers"]
    assert "pending" in row


def test_the_consent_text_shown_is_the_one_recorded(web: WebHarness) -> None:
    client = web.client()
    page = client.get("/subscribe").text
    shown = page.split('<p class="consent">', 1)[1].split("</p>", 1)[0]
    signup(client, "ouder@example.org")
    texts = web.snapshot()["consent_texts"]
    assert [row[1] for row in texts] == [shown]


def test_requester_ip_and_user_agent_reach_the_consent_log(web: WebHarness) -> None:
    client = web.client(ip="203.0.113.50", headers={"User-Agent": "Testbrowser/1.0"})
    signup(client, "ouder@example.org")
    details = web.people.show("ouder@example.org")
    [requested] = [e for e in details.consent_log if e.event == "subscribe_requested"]
    assert requested.source == "form"
    assert requested.user_agent == "Testbrowser/1.0"
    assert requested.ip not in (None, "203.0.113.50")  # hashed by default


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": ""}, "Vul je e-mailadres in."),
        ({"email": "ouder@"}, "Dit is geen geldig e-mailadres."),
        ({"email": "a" * 300 + "@example.org"}, "Dit e-mailadres is te lang."),
        ({"email": "ouder@example.org", "name": "x" * 101}, "hoogstens 100 tekens"),
        ({"email": "ouder@example.org", "name": "Kijk op https://spam.example"}, "zonder links"),
        ({"email": "ouder@example.org", "name": "<b>Sanne</b>"}, "zonder links"),
        ({"email": "ouder@example.org", "name": "Sanne\r\nBcc: x@example.org"}, "op één regel"),
        ({"email": "ouder@example.org", "themes": ["geheim"]}, "Kies alleen thema's"),
    ],
)
def test_input_errors_show_the_form_again_in_dutch(
    web: WebHarness, fields: dict[str, Any], message: str
) -> None:
    client = web.client()
    response = signup(client, **fields)
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert "Er klopt iets nog niet" in response.text
    assert '<p class="field-error"' in response.text
    assert web.smtp.received == []
    assert web.snapshot()["subscribers"] == []


def test_the_form_comes_back_with_what_was_typed_escaped(web: WebHarness) -> None:
    response = signup(
        web.client(), "niet-geldig", name='"><script>alert(1)</script>', themes=["doe-je-mee"]
    )
    assert response.status_code == 400
    assert 'value="niet-geldig"' in response.text
    assert "<script>" not in response.text
    assert "&#34;&gt;&lt;script&gt;" in response.text
    assert 'value="doe-je-mee" checked' in response.text


def test_a_filled_honeypot_pretends_success_and_does_nothing(web: WebHarness) -> None:
    client = web.client()
    human = signup(client, "mens@example.org")
    robot = signup(client, "robot@example.org", opmerking="Koop nu!")
    assert robot.status_code == human.status_code == 200
    assert robot.text == human.text
    assert web.smtp.delivered_to() == ["mens@example.org"]
    assert len(web.snapshot()["subscribers"]) == 1


# -- nobody can learn who is subscribed ------------------------------------------------


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
        # The same addresses as typed by someone else: other case, spaces around.
        " Confirmed@Example.org ",
    ):
        response = signup(web.client(), email)
        headers = {k: v for k, v in response.headers.items() if k not in ("date",)}
        answers.append((response.status_code, headers, without_csrf(response.text)))
    assert all(answer == answers[0] for answer in answers[1:])
    assert answers[0][0] == 200
    assert "set-cookie" not in answers[0][1]
    assert "@" not in answers[0][2].split("<main", 1)[1].split("</main>")[0]


def test_a_confirmed_address_gets_its_preferences_link_not_a_second_confirmation(
    web: WebHarness,
) -> None:
    view = web.confirmed("lezer@example.org")
    signup(web.client(), "lezer@example.org")
    message = web.messages_to("lezer@example.org")[-1]
    assert view.preferences_url in links_in(message)
    assert not any("/confirm/" in url for url in links_in(message))
