"""A subscriber's own page: name and themes, a new address, leaving."""

from __future__ import annotations

from tests.support.webharness import WebHarness, csrf_token, without_csrf


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
