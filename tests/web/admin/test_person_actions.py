"""Staff acting on people under /admin: add one, change, mail again, unsubscribe, erase,
and the list of bounced and complained people. Every action in the consent log as staff."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.staff.accounts import add_user
from subscribers.bounces import record_hard_bounce
from subscribers.models import ConsentEvent, Subscriber, Suppression
from tests.support.clock import FixedClock
from tests.support.webharness import STAFF_PASSWORD as PASSWORD
from tests.support.webharness import WebHarness, csrf_token, web_harness

THEMES = {"doe-je-mee": {"name": "Doe je mee?"}, "onderzoek": {"name": "Onderzoek"}}


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    with web_harness(make_settings, clock, themes=THEMES) as harness:
        with harness.database.session() as session:
            add_user(session, "redactie", PASSWORD, email=None, now=clock())
        yield harness


def post(client: TestClient, path: str, form_page: str, **data: Any) -> Any:
    token = csrf_token(client.get(form_page).text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def add(client: TestClient, **data: Any) -> Any:
    return post(client, "/admin/subscribers/new", "/admin/subscribers/new", **data)


def row(web: WebHarness, email: str) -> Subscriber | None:
    with web.database.session() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email_key == email))
        if found is not None:
            session.expunge(found)
        return found


def events(web: WebHarness) -> list[tuple[str, str, dict[str, Any] | None]]:
    with web.database.session() as session:
        found = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
        return [(event.event, event.source, event.details) for event in found]


def test_adding_sends_a_confirmation_mail_by_default(web: WebHarness, staff: TestClient) -> None:
    answer = add(staff, email="Ouder@Example.org", name="Sanne", themes="onderzoek")
    assert answer.status_code == 303
    subscriber = row(web, "ouder@example.org")
    assert subscriber is not None and subscriber.status == "pending"
    assert (
        answer.headers["location"]
        == f"/admin/subscribers/{subscriber.public_id}?done=added_pending"
    )
    assert len(web.messages_to("Ouder@example.org")) == 1
    page = staff.get(answer.headers["location"]).text
    assert "Toegevoegd. De persoon krijgt een bevestigingsmail" in page
    requested = [e for e in events(web) if e[0] == "subscribe_requested"]
    assert requested[0][1] == "staff" and requested[0][2] is not None
    assert requested[0][2]["staff"] == "redactie"


def test_adding_from_a_paper_list_needs_a_reason(web: WebHarness, staff: TestClient) -> None:
    before = web.snapshot()
    refused = add(staff, email="papier@example.org", how="confirmed", reason="  ")
    assert refused.status_code == 422
    assert "Schrijf op waarom dit adres zonder bevestigingsmail op de lijst mag" in refused.text
    assert 'value="papier@example.org"' in refused.text
    assert web.snapshot() == before

    done = add(
        staff,
        email="papier@example.org",
        how="confirmed",
        reason="papieren lijst actiedag 15 maart",
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?done=added_confirmed")
    subscriber = row(web, "papier@example.org")
    assert subscriber is not None and subscriber.status == "confirmed"
    assert web.messages_to("papier@example.org") == []
    [added] = [e for e in events(web) if e[0] == "added_by_staff"]
    assert added[1] == "staff"
    assert added[2] == {
        "themes": [],
        "note": "papieren lijst actiedag 15 maart",
        "staff": "redactie",
    }


def test_a_suppressed_address_is_not_confirmed_by_staff(web: WebHarness, staff: TestClient) -> None:
    web.unsubscribed("weg@example.org")
    before = web.snapshot()
    refused = add(staff, email="weg@example.org", how="confirmed", reason="papieren lijst")
    assert refused.status_code == 409
    assert "Zonder eigen toestemming zetten we het niet terug" in refused.text
    assert web.snapshot() == before


def test_a_bad_address_is_refused_in_dutch(web: WebHarness, staff: TestClient) -> None:
    before = web.snapshot()
    refused = add(staff, email="nota", name="Piet")
    assert refused.status_code == 422
    assert "Dit is geen geldig e-mailadres" in refused.text
    assert web.snapshot() == before


def test_staff_change_name_and_themes(web: WebHarness, staff: TestClient) -> None:
    web.confirmed("ouder@example.org", name="Sanne")
    person = row(web, "ouder@example.org")
    assert person is not None
    page = f"/admin/subscribers/{person.public_id}"
    answer = post(staff, f"{page}/details", page, name="Sanne de Vries", themes="doe-je-mee")
    assert answer.headers["location"] == f"{page}?done=saved"
    changed = row(web, "ouder@example.org")
    assert changed is not None
    assert (changed.name, changed.themes) == ("Sanne de Vries", ["doe-je-mee"])
    assert events(web)[-1] == (
        "preferences_changed",
        "staff",
        {"themes": ["doe-je-mee"], "name_changed": True, "staff": "redactie"},
    )
    refused = post(staff, f"{page}/details", page, name="<a href=x>", themes="doe-je-mee")
    assert refused.status_code == 422 and "Vul alleen een naam in" in refused.text


def test_staff_unsubscribe_a_person(web: WebHarness, staff: TestClient) -> None:
    web.confirmed("ouder@example.org")
    person = row(web, "ouder@example.org")
    assert person is not None
    page = f"/admin/subscribers/{person.public_id}"
    assert (
        post(staff, f"{page}/unsubscribe", page).headers["location"] == f"{page}?done=unsubscribed"
    )
    gone = row(web, "ouder@example.org")
    assert gone is not None and gone.status == "unsubscribed"
    assert events(web)[-1][:2] == ("removed", "staff")


def test_erasing_asks_first_and_says_what_remains(web: WebHarness, staff: TestClient) -> None:
    web.confirmed("ouder@example.org", name="Sanne")
    person = row(web, "ouder@example.org")
    assert person is not None
    page = f"/admin/subscribers/{person.public_id}/erase"
    asked = staff.get(page)
    assert "Dit blijft" in asked.text and "onherleidbare code (hash)" in asked.text
    before = web.snapshot()
    not_sure = post(staff, page, page)
    assert not_sure.status_code == 422 and "Er is niets gewist" in not_sure.text
    assert web.snapshot() == before

    erased = post(staff, page, page, sure="ja")
    assert erased.headers["location"] == "/admin/subscribers?done=erased"
    assert "De gegevens zijn gewist" in staff.get(erased.headers["location"]).text
    assert row(web, "ouder@example.org") is None
    with web.database.session() as session:
        assert session.scalars(select(Suppression.reason)).all() == ["erased"]
    assert events(web)[-1] == ("erased", "staff", {"staff": "redactie"})


def test_a_bounced_person_gets_a_new_chance_by_their_own_opt_in(
    web: WebHarness, staff: TestClient
) -> None:
    web.confirmed("weg@example.org")
    person = row(web, "weg@example.org")
    assert person is not None
    with web.database.session() as session:
        record_hard_bounce(
            session,
            person.id,
            settings=web.settings,
            now=web.clock(),
            reply="550 no such user weg@example.org",
        )
    listed = staff.get("/admin/subscribers/returned").text
    assert "weg@example.org" in listed and "550 no such user (address)" in listed

    page = f"/admin/subscribers/{person.public_id}"
    before = len(web.messages_to("weg@example.org"))
    answer = post(staff, f"{page}/confirm-again", page)
    assert answer.headers["location"] == f"{page}?done=mail_sent"
    assert len(web.messages_to("weg@example.org")) == before + 1
    still = row(web, "weg@example.org")
    assert still is not None and still.status == "bounced"
    requested = [e for e in events(web) if e[0] == "subscribe_requested"][-1]
    assert requested[1] == "staff" and requested[2] is not None
    assert requested[2]["note"].startswith("nieuwe kans na onbestelbaar")

    web.confirmed("blij@example.org")
    happy = row(web, "blij@example.org")
    assert happy is not None
    happy_page = f"/admin/subscribers/{happy.public_id}"
    assert post(staff, f"{happy_page}/confirm-again", happy_page).status_code == 409


def test_a_pending_person_gets_the_confirmation_mail_again(
    web: WebHarness, staff: TestClient
) -> None:
    web.request("wacht@example.org")
    person = row(web, "wacht@example.org")
    assert person is not None
    page = f"/admin/subscribers/{person.public_id}"
    assert "Stuur de bevestigingsmail opnieuw" in staff.get(page).text
    answer = post(staff, f"{page}/confirm-again", page)
    assert answer.headers["location"] == f"{page}?done=mail_sent"
    assert len(web.messages_to("wacht@example.org")) == 2
    still = row(web, "wacht@example.org")
    assert still is not None and still.status == "pending"
    # The per-mailbox limit (3 a day) holds for staff too: the page says so.
    post(staff, f"{page}/confirm-again", page)
    limited = post(staff, f"{page}/confirm-again", page)
    assert limited.headers["location"] == f"{page}?done=mail_limit"
    assert (
        "kreeg vandaag al het hoogste aantal mails" in staff.get(limited.headers["location"]).text
    )
    assert len(web.messages_to("wacht@example.org")) == 3


def test_actions_on_an_unknown_person_are_404_and_change_nothing(
    web: WebHarness, staff: TestClient
) -> None:
    web.confirmed("ouder@example.org")
    person = row(web, "ouder@example.org")
    assert person is not None
    page = f"/admin/subscribers/{person.public_id}"
    token = csrf_token(staff.get(page).text)
    before = web.snapshot()
    for action in ("details", "confirm-again", "unsubscribe", "erase"):
        for wrong in ("onbekend", "x" * 80):
            answer = staff.post(f"/admin/subscribers/{wrong}/{action}", data={"csrf_token": token})
            assert answer.status_code == 404, (wrong, action)
        forged = staff.post(f"{page}/{action}", data={"csrf_token": "fout", "sure": "ja"})
        assert forged.status_code == 403, action
    assert staff.get("/admin/subscribers/onbekend/erase").status_code == 404
    assert web.snapshot() == before
