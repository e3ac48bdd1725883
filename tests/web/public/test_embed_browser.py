"""The form pasted on another website, in headless Chromium: sign up, confirm, or be refused.

The app runs under uvicorn on one port (as `newsletter serve` runs it), mailing through
aiosmtpd; "the movement's website" is a plain HTTP server on another port serving a page
with the snippet staff copied from /admin/embed, and a third port plays a site that is
not in `[web] embed_origins`. The browser has JavaScript switched off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.staff.accounts import add_user
from subscribers.models import Subscriber
from tests.support.browser import CHROMIUM, new_context
from tests.support.httpserver import LocalHTTPServer, Response
from tests.support.webharness import (
    STAFF_NAME,
    STAFF_PASSWORD,
    RunningSite,
    links_in,
    running_site,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]

PAGE = """<!doctype html>
<html lang="nl">
<head><meta charset="utf-8"><title>Praat mee</title></head>
<body>
<h1>Praat mee met de beweging</h1>
{snippet}
</body>
</html>
"""


@pytest.fixture
def website() -> Iterator[LocalHTTPServer]:
    """The movement's own website, on a port of its own."""
    server = LocalHTTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def elsewhere() -> Iterator[LocalHTTPServer]:
    """A site that copied the form but is not in embed_origins."""
    server = LocalHTTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def site(make_settings: Callable[..., Settings], website: LocalHTTPServer) -> Iterator[RunningSite]:
    with running_site(make_settings, web={"embed_origins": [website.base_url]}) as running:
        with running.database.session() as session:
            add_user(
                session, STAFF_NAME, STAFF_PASSWORD, email="redactie@example.org", now=utc_now()
            )
        yield running


def copied_snippet(site: RunningSite, browser: Any) -> str:
    """The form as staff copy it from /admin/embed after logging in."""
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.base_url}/admin/embed")
    page.get_by_label("Naam").fill(STAFF_NAME)
    page.get_by_label("Wachtwoord").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    assert page.url == f"{site.base_url}/admin/embed"
    snippet: str = page.get_by_label("HTML van het formulier").input_value()
    context.close()
    return snippet


def paste(server: LocalHTTPServer, snippet: str) -> str:
    """A page with the snippet on `server`; its URL."""
    body = PAGE.format(snippet=snippet).encode("utf-8")
    return server.serve(
        "/praat-mee", Response(body=body, headers={"Content-Type": "text/html; charset=utf-8"})
    )


def stored(site: RunningSite, email: str) -> int:
    with site.database.session() as session:
        count: int = session.scalar(
            select(func.count()).select_from(Subscriber).where(Subscriber.email == email)
        )
    return count


def test_sign_up_on_the_website_and_confirm_in_a_real_browser(
    site: RunningSite, website: LocalHTTPServer, browser: Any
) -> None:
    form_page = paste(website, copied_snippet(site, browser))
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.goto(form_page)
    page.get_by_label("E-mailadres").fill("ouder@example.org")
    page.get_by_label("Je naam").fill("Sanne")
    page.get_by_label("Kampvuurgesprekken").check()
    page.get_by_role("button", name="Aanmelden").click()
    assert page.url == f"{site.base_url}/embed/subscribe"
    assert page.get_by_role("heading", level=1).inner_text() == "Kijk in je mailbox"
    assert site.people.show("ouder@example.org").subscriber.status == "pending"

    message = site.wait_for_mail("ouder@example.org")
    confirm_url = next(url for url in links_in(message) if "/confirm/" in url)
    assert confirm_url.startswith(f"{site.base_url}/confirm/")
    page.goto(confirm_url)
    page.locator("main form button[type=submit]").click()
    person = site.people.show("ouder@example.org").subscriber
    assert person.status == "confirmed"
    assert person.name == "Sanne"
    assert list(person.themes) == ["kampvuurgesprekken"]

    # The website's page asked nothing of anyone but the two sites, and set no cookie there.
    assert all(url.startswith((website.base_url, site.base_url)) for url in requests), requests
    assert [cookie["name"] for cookie in context.cookies()] == ["csrf"]
    context.close()


def test_wrong_input_on_the_website_can_be_corrected_on_this_site(
    site: RunningSite, website: LocalHTTPServer, browser: Any
) -> None:
    form_page = paste(website, copied_snippet(site, browser))
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    page.goto(form_page)
    page.get_by_label("E-mailadres").fill("jongere@example.org")
    page.get_by_label("Je naam").fill("Kijk op https://spam.example")
    with page.expect_response(lambda response: "/embed/subscribe" in response.url) as answer:
        page.get_by_role("button", name="Aanmelden").click()
    assert answer.value.status == 422
    assert page.get_by_role("heading", level=1).inner_text() == "Meld je aan voor de nieuwsbrief"
    assert page.get_by_label("E-mailadres").input_value() == "jongere@example.org"
    page.get_by_label("Je naam").fill("Joris")
    page.get_by_role("button", name="Aanmelden").click()
    assert page.url == f"{site.base_url}/subscribe"
    assert page.get_by_role("heading", level=1).inner_text() == "Kijk in je mailbox"
    assert site.people.show("jongere@example.org").subscriber.name == "Joris"
    context.close()


def test_the_form_on_a_site_not_allowed_is_refused_in_a_real_browser(
    site: RunningSite, elsewhere: LocalHTTPServer, browser: Any
) -> None:
    form_page = paste(elsewhere, copied_snippet(site, browser))
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    page.goto(form_page)
    page.get_by_label("E-mailadres").fill("buurman@example.org")
    with page.expect_response(lambda response: "/embed/subscribe" in response.url) as answer:
        page.get_by_role("button", name="Aanmelden").click()
    assert answer.value.status == 403
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading == "Aanmelden via die website lukt niet"
    text = page.locator("main").inner_text()
    assert "127.0.0.1:" in text and "mag geen aanmeldingen doorsturen" in text
    assert stored(site, "buurman@example.org") == 0
    assert not any("buurman@example.org" in item.recipients for item in site.smtp.received)

    page.get_by_role("link", name="Naar het aanmeldformulier").click()
    assert page.url == f"{site.base_url}/subscribe"
    context.close()
