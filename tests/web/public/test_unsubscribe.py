"""Leaving: the link in every mail, and the one-click POST of mail programs."""

from __future__ import annotations

import pytest

from tests.support.webharness import (
    WebHarness,
    csrf_token,
    links_in,
    post_form,
    token_in,
    without_csrf,
)


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


# -- without a working link: how to leave comes first, and never a sign-up form ---------


def test_a_broken_unsubscribe_link_shows_how_to_leave_and_no_sign_up_form(
    web: WebHarness,
) -> None:
    page = web.client().get("/unsubscribe/xyz")
    assert page.status_code == 404
    text = page.text
    assert "<h1>Afmelden voor de nieuwsbrief</h1>" in text
    assert 'action="/unsubscribe"' in text
    assert "Stuur me een afmeldlink" in text
    assert 'action="/subscribe"' not in text and "Stuur me een nieuwe mail" not in text
    assert web.settings.site.contact_email in text
    # How to leave comes before anything else on the page.
    main = text[text.index("<main") :]
    assert main.index("Stuur me een afmeldlink") < main.index(web.settings.site.contact_email)


def test_a_link_to_leave_is_mailed_to_an_address_on_the_list(web: WebHarness) -> None:
    view = web.confirmed("lezer@example.org")
    client = web.client()
    answer = post_form(
        client, "/unsubscribe", {"email": "Lezer@Example.org"}, form_page="/unsubscribe"
    )
    assert answer.status_code == 200 and "Kijk in je mailbox" in answer.text
    message = web.messages_to("lezer@example.org")[-1]
    assert "af te melden" in str(message["Subject"])
    assert view.unsubscribe_url in links_in(message)
    # The link in it leaves, with the usual button.
    assert client.post(view.unsubscribe_url).status_code == 200
    assert web.people.show("lezer@example.org").subscriber.status == "unsubscribed"


def test_asking_for_a_link_to_leave_tells_nobody_who_is_on_the_list(web: WebHarness) -> None:
    web.confirmed("lezer@example.org")
    client = web.client()
    on_list = post_form(
        client, "/unsubscribe", {"email": "lezer@example.org"}, form_page="/unsubscribe"
    )
    not_on_list = post_form(
        client, "/unsubscribe", {"email": "niemand@example.org"}, form_page="/unsubscribe"
    )
    assert on_list.status_code == not_on_list.status_code == 200
    assert without_csrf(on_list.text) == without_csrf(not_on_list.text)
    assert web.messages_to("niemand@example.org") == []


def test_a_mistyped_address_gets_the_form_back_with_what_was_typed(web: WebHarness) -> None:
    before = web.snapshot()
    answer = post_form(web.client(), "/unsubscribe", {"email": "lezer@"}, form_page="/unsubscribe")
    assert answer.status_code == 400
    assert 'value="lezer@"' in answer.text and 'aria-invalid="true"' in answer.text
    assert web.snapshot() == before
