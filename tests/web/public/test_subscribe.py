"""The sign-up form and the pages behind the links in mails, through the real app."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from newsletter.core.config import Settings
from tests.support.clock import FixedClock
from tests.support.webharness import (
    WebHarness,
    csrf_token,
    links_in,
    token_in,
    web_harness,
    without_csrf,
)


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(make_settings, clock) as harness:
        yield harness


def post_form(client: TestClient, path: str, data: dict[str, Any], *, form_page: str) -> Any:
    """Open `form_page` as a browser would (cookie and field), then post `data` to `path`."""
    token = csrf_token(client.get(form_page).text)
    return client.post(path, data={"csrf_token": token, **data})


def signup(client: TestClient, email: str, **fields: Any) -> Any:
    return post_form(client, "/subscribe", {"email": email, **fields}, form_page="/subscribe")


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


# -- confirming ------------------------------------------------------------------------


def test_the_confirm_link_shows_a_button_and_only_the_button_confirms(web: WebHarness) -> None:
    client = web.client()
    signup(client, "ouder@example.org", themes=["kampvuurgesprekken"])
    url = web.confirm_url_for("ouder@example.org")
    before = web.snapshot()
    page = client.get(url)
    assert page.status_code == 200
    assert "Bevestig je aanmelding" in page.text
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


# -- unsubscribing ---------------------------------------------------------------------


def test_the_unsubscribe_link_shows_a_button_and_only_the_button_unsubscribes(
    web: WebHarness,
) -> None:
    view = web.confirmed("lezer@example.org")
    client = web.client()
    before = web.snapshot()
    page = client.get(view.unsubscribe_url)
    assert page.status_code == 200
    assert "lezer@example.org" in page.text
    assert f'action="/unsubscribe/{token_in(view.unsubscribe_url)}"' in page.text
    assert web.snapshot() == before
    assert "set-cookie" not in page.headers  # this page needs no cookie at all

    done = client.post(view.unsubscribe_url)
    assert done.status_code == 200
    assert "Je bent afgemeld" in done.text
    assert web.people.show("lezer@example.org").subscriber.status == "unsubscribed"
    again = client.get(view.unsubscribe_url)
    assert "Je bent al afgemeld" in again.text


def test_one_click_unsubscribe_needs_no_cookie_and_may_come_twice(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    # A mail provider's one-click request (RFC 8058): no cookie, no CSRF field.
    client = web.client(ip="192.0.2.200")
    for _ in range(2):
        response = client.post(
            view.unsubscribe_url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        assert "Je bent afgemeld" in response.text
    assert web.people.show("lezer@example.org").subscriber.status == "unsubscribed"
    events = [e.event for e in web.people.show("lezer@example.org").consent_log]
    assert events.count("unsubscribed") == 1


def test_one_click_as_multipart_works_too(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    response = web.client().post(
        view.unsubscribe_url, files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert response.status_code == 200
    assert web.people.show("lezer@example.org").subscriber.status == "unsubscribed"


@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
def test_forged_and_foreign_link_tokens_change_nothing(web: WebHarness, purpose: str) -> None:
    view = web.confirmed("lezer@example.org")
    other = web.confirmed("ander@example.org")
    own = token_in(getattr(view, f"{purpose}_url"))
    public_id, _, mac = own.partition(".")
    other_id = token_in(other.unsubscribe_url).partition(".")[0]
    wrong_purpose = token_in(
        view.preferences_url if purpose == "unsubscribe" else view.unsubscribe_url
    )
    client = web.client()
    unknown = client.get(f"/{purpose}/" + "q" * 45)
    before = web.snapshot()
    for token in (
        f"{other_id}.{mac}",  # someone else's id with this MAC
        f"{public_id}.{mac[:-1]}",
        f"{public_id}.{'A' * len(mac)}",
        wrong_purpose,
        public_id,
    ):
        page = client.get(f"/{purpose}/{token}")
        assert page.status_code == 404
        assert without_csrf(page.text) == without_csrf(unknown.text)
        posted = client.post(
            f"/{purpose}/{token}",
            data={"csrf_token": csrf_token(page.text), "action": "unsubscribe"},
        )
        assert posted.status_code == 404
    assert web.snapshot() == before


# -- preferences -----------------------------------------------------------------------


def test_preferences_change_name_and_themes(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org", name="Sanne")
    client = web.client()
    page = client.get(view.preferences_url)
    assert page.status_code == 200
    assert 'value="Sanne"' in page.text
    response = client.post(
        view.preferences_url,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "save",
            "name": "Sanne de Vries",
            "themes": ["doe-je-mee", "kampvuurgesprekken"],
        },
    )
    assert response.status_code == 200
    assert "Je wijzigingen zijn opgeslagen" in response.text
    subscriber = web.people.show("lezer@example.org").subscriber
    assert subscriber.name == "Sanne de Vries"
    assert sorted(subscriber.themes) == ["doe-je-mee", "kampvuurgesprekken"]


def test_preferences_refuse_a_name_with_a_link(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org", name="Sanne")
    client = web.client()
    page = client.get(view.preferences_url)
    response = client.post(
        view.preferences_url,
        data={"csrf_token": csrf_token(page.text), "action": "save", "name": "www.spam.example"},
    )
    assert response.status_code == 400
    assert "zonder links" in response.text
    assert web.people.show("lezer@example.org").subscriber.name == "Sanne"


def test_preferences_unsubscribe(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    client = web.client()
    page = client.get(view.preferences_url)
    response = client.post(
        view.preferences_url, data={"csrf_token": csrf_token(page.text), "action": "unsubscribe"}
    )
    assert response.status_code == 200
    assert "Je bent afgemeld" in response.text
    assert web.people.show("lezer@example.org").subscriber.status == "unsubscribed"


def test_a_new_address_must_confirm_before_it_counts(web: WebHarness) -> None:
    view = web.confirmed("oud@example.org")
    client = web.client()
    page = client.get(view.preferences_url)
    response = client.post(
        view.preferences_url,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "change_email",
            "new_email": "nieuw@example.org",
        },
    )
    assert response.status_code == 200
    assert "Kijk in je nieuwe mailbox" in response.text
    assert web.people.show("oud@example.org").subscriber.status == "confirmed"

    url = web.confirm_url_for("nieuw@example.org")
    confirm_page = client.get(url)
    done = client.post(url, data={"csrf_token": csrf_token(confirm_page.text)})
    assert done.status_code == 200
    assert "nieuw@example.org" in done.text
    assert web.people.show("nieuw@example.org").subscriber.public_id == view.public_id


def test_a_new_address_with_a_typo_gets_a_dutch_message(web: WebHarness) -> None:
    view = web.confirmed("oud@example.org")
    client = web.client()
    page = client.get(view.preferences_url)
    response = client.post(
        view.preferences_url,
        data={
            "csrf_token": csrf_token(page.text),
            "action": "change_email",
            "new_email": "nieuw@",
        },
    )
    assert response.status_code == 400
    assert "Dit is geen geldig e-mailadres" in response.text
    assert 'value="nieuw@"' in response.text
    assert web.smtp.delivered_to() == ["oud@example.org"]


def test_an_address_change_answers_the_same_whoever_owns_the_new_address(
    web: WebHarness,
) -> None:
    view = web.confirmed("oud@example.org")
    web.confirmed("bezet@example.org")
    answers = []
    for new_email in ("vrij@example.org", "bezet@example.org"):
        client = web.client()
        page = client.get(view.preferences_url)
        response = client.post(
            view.preferences_url,
            data={
                "csrf_token": csrf_token(page.text),
                "action": "change_email",
                "new_email": new_email,
            },
        )
        answers.append((response.status_code, without_csrf(response.text)))
    assert answers[0] == answers[1]


def test_an_unknown_preferences_action_is_refused(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    client = web.client()
    page = client.get(view.preferences_url)
    before = web.snapshot()
    response = client.post(
        view.preferences_url, data={"csrf_token": csrf_token(page.text), "action": "erase"}
    )
    assert response.status_code == 400
    assert web.snapshot() == before


# -- a GET never changes anything ------------------------------------------------------


def test_no_get_changes_anything(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    web.request("wacht@example.org")
    pending_url = web.confirm_url_for("wacht@example.org")
    client = web.client()
    before = web.snapshot()
    paths = [
        "/",
        "/subscribe",
        pending_url,
        "/confirm/" + "x" * 43,
        view.unsubscribe_url,
        "/unsubscribe/nope",
        view.preferences_url,
        "/preferences/nope",
        "/healthz",
        "/static/site.css",
        "/static/favicon.svg",
        "/does-not-exist",
        "/api/subscribe",
    ]
    for path in paths:
        response = client.get(path, follow_redirects=False)
        assert response.status_code < 500, path
    assert web.snapshot() == before
    assert web.flows.confirmation_is_valid(token_in(pending_url))


def test_health_says_ok_and_nothing_more(web: WebHarness) -> None:
    response = web.client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
