"""What a subscriber meets, in Chromium against the real server and aiosmtpd: each finding
of the subscriber-flows issue, walked through as the person who met it.

The app runs under uvicorn (as `newsletter serve` runs it); the browser has JavaScript
switched off, as the pages need none; mails are read from the SMTP server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import UnknownSubscriber
from subscribers.consent import Requester
from tests.support.archive import add_edition
from tests.support.browser import CHROMIUM, new_context
from tests.support.clock import FixedClock
from tests.support.httpserver import LocalHTTPServer, Response
from tests.support.subscribers import events_of, force_status, subscribe_and_confirm
from tests.support.waiting import wait_until
from tests.support.webharness import RunningSite, links_in, running_site

PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing (install it with `make browser`; apt may still be busy)",
    ),
]


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[RunningSite]:
    with running_site(make_settings) as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = new_context(browser, viewport=PHONE, java_script_enabled=False)
    yield context.new_page()
    context.close()


def heading(page: Any) -> str:
    text: str = page.get_by_role("heading", level=1).inner_text()
    return text


def sign_up(page: Any, site: RunningSite, email: str, name: str = "", theme: str = "") -> Any:
    page.goto(f"{site.base_url}/subscribe")
    page.get_by_label("E-mailadres").fill(email)
    if name:
        page.get_by_label("Je naam").fill(name)
    if theme:
        page.get_by_label(theme, exact=True).check()
    page.get_by_role("button", name="Aanmelden").click()
    return page


def link_in(message: EmailMessage, part: str) -> str:
    return next(url for url in links_in(message) if part in url)


def html_button(message: EmailMessage) -> str:
    """The words on the mail's one button (the link styled as a button)."""
    body = message.get_body(("html",))
    assert body is not None
    found = re.search(r'<a class="mail-button"[^>]*>([^<]+)</a>', body.get_content())
    assert found, "no button in the mail"
    return found.group(1).strip()


def status_of(site: RunningSite, email: str) -> str | None:
    try:
        record = site.people.show(email)
    except UnknownSubscriber:
        return None
    return None if record.subscriber is None else str(record.subscriber.status)


# -- 9: confirming applies the clicked link's own request ----------------------------------


def test_confirming_applies_my_request_not_a_strangers_made_later(
    site: RunningSite, browser: Any
) -> None:
    me = new_context(browser, viewport=PHONE, java_script_enabled=False).new_page()
    stranger = new_context(browser, java_script_enabled=False).new_page()
    sign_up(me, site, "anouk@example.org", "Anouk", "Kampvuurgesprekken")
    first = site.wait_for_mail("anouk@example.org")
    sign_up(stranger, site, "anouk@example.org", "Bel 0900 1234 voor hulp", "Doe je mee?")
    site.wait_for_mail("anouk@example.org", count=2)

    me.goto(link_in(first, "/confirm/"))
    me.get_by_role("button", name="Aanmelding bevestigen").click()

    assert heading(me) == "Gelukt, je bent aangemeld"
    assert "Kampvuurgesprekken" in me.locator("main").inner_text()
    assert "Doe je mee?" not in me.locator("main").inner_text()
    record = site.people.show("anouk@example.org")
    assert record.subscriber is not None
    assert (record.subscriber.name, record.subscriber.themes) == (
        "Anouk",
        ("kampvuurgesprekken",),
    )
    # The welcome mail greets the person who confirmed, by the name they gave.
    welcome = site.wait_for_mail("anouk@example.org", count=3)
    assert str(welcome["Subject"]).startswith("Welkom")
    assert "Hallo Anouk," in welcome.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "0900" not in welcome.as_string()


# -- 4: the same words in mail, page and button, and why one more press ---------------------


def test_the_confirm_button_says_what_the_mail_said_and_why_one_more_press(
    site: RunningSite, page: Any
) -> None:
    sign_up(page, site, "sanne@example.org")
    mail = site.wait_for_mail("sanne@example.org")
    page.goto(link_in(mail, "/confirm/"))
    words = html_button(mail)
    assert words == "Aanmelding bevestigen"
    assert heading(page) == words
    assert page.get_by_role("button", name=words).is_visible()
    main = page.locator("main").inner_text()
    assert "Nog één stap" in main and "mailprogramma's openen links" in main
    assert status_of(site, "sanne@example.org") == "pending"  # opening is not confirming


# -- 1: confirming an address change says exactly what happened, per status ---------------


def ask_to_move(site: RunningSite, page: Any) -> str:
    """Anouk, confirmed, asks on her preferences page to move to her new address."""
    view = subscribe_and_confirm(site.flows, "oud@example.org", name="Anouk")
    page.goto(view.preferences_url)
    page.get_by_label("Nieuw e-mailadres").fill("nieuw@example.org")
    page.get_by_role("button", name="Stuur bevestigingsmail").click()
    assert heading(page) == "Kijk in je nieuwe mailbox"
    mail = site.wait_for_mail("nieuw@example.org")
    assert html_button(mail) == "Nieuw adres bevestigen"
    return link_in(mail, "/confirm/")


ROWS = {
    # status by the time the link is used: (heading after pressing, status of the new
    # address, status of the old one)
    "confirmed": ("Gelukt, je adres is gewijzigd", "confirmed", None),
    "bounced": ("Gelukt, je adres is gewijzigd", "confirmed", None),
    "unsubscribed": ("Er is niets veranderd", None, "unsubscribed"),
    "complained": ("Er is niets veranderd", None, "complained"),
}


@pytest.mark.parametrize("status", ROWS)
def test_confirming_an_address_change_says_what_happened(
    site: RunningSite, page: Any, status: str
) -> None:
    link = ask_to_move(site, page)
    if status == "unsubscribed":
        page.goto(site.people.show("oud@example.org").subscriber.unsubscribe_url)  # type: ignore[union-attr]
        page.get_by_role("button", name="Afmelden").click()
    elif status != "confirmed":
        force_status(site.database, "oud@example.org", status)

    page.goto(link)
    assert heading(page) == "Nieuw adres bevestigen"
    page.get_by_role("button", name="Nieuw adres bevestigen").click()

    title, new_status, old_status = ROWS[status]
    assert heading(page) == title
    main = page.locator("main").inner_text()
    if new_status == "confirmed":
        assert "Je ontvangt de nieuwsbrief voortaan op nieuw@example.org" in main
    else:
        assert "voortaan" not in main and "aangemeld" not in heading(page)
        assert page.get_by_role("link", name="Opnieuw aanmelden").is_visible()
    assert status_of(site, "nieuw@example.org") == new_status
    assert status_of(site, "oud@example.org") == old_status


def test_a_change_confirmed_after_an_erasure_finds_a_dead_link(
    site: RunningSite, page: Any
) -> None:
    link = ask_to_move(site, page)
    site.people.erase("oud@example.org", Requester("cli"))
    page.goto(link)
    assert heading(page) == "Deze link werkt niet (meer)"
    assert status_of(site, "nieuw@example.org") is None


# -- 2 and 12: the sign-up limit counts only accepted sign-ups ------------------------------


@pytest.fixture
def strict_site(make_settings: Callable[..., Settings]) -> Iterator[RunningSite]:
    with running_site(make_settings, web={"signup_limit_per_ip": 3}) as running:
        yield running


def test_typos_and_other_sites_posts_do_not_lock_out_a_shared_laptop(
    strict_site: RunningSite, page: Any
) -> None:
    site = strict_site
    for typo in ["jan@", "jan example.org", "jan@@example.org", "@example.org", "jan"]:
        sign_up(page, site, typo)
        assert page.get_by_role("alert").is_visible()  # "Er klopt iets nog niet"
    # Another website's form posts this browser at our sign-up: refused, and not counted.
    elsewhere = LocalHTTPServer().start()
    try:
        elsewhere.serve(
            "/form.html",
            Response(
                body=(
                    f'<form method="post" action="{site.base_url}/subscribe">'
                    '<input name="email" value="slachtoffer@example.org">'
                    "<button>Win een prijs</button></form>"
                ).encode(),
                headers={"Content-Type": "text/html; charset=utf-8"},
            ),
        )
        for _ in range(4):
            page.goto(elsewhere.url("/form.html"))
            page.get_by_role("button", name="Win een prijs").click()
            assert heading(page) == "Dit formulier is verlopen"
    finally:
        elsewhere.stop()
    for n in range(3):
        sign_up(page, site, f"bezoeker{n}@example.org")
        assert heading(page) == "Kijk in je mailbox"

    sign_up(page, site, "vierde@example.org", "Vera", "Doe je mee?")
    assert page.get_by_role("heading", name="Even wachten, alsjeblieft").is_visible()
    # What was typed is still there, to send again after the wait.
    assert page.get_by_label("E-mailadres").input_value() == "vierde@example.org"
    assert page.get_by_label("Je naam").input_value() == "Vera"
    assert page.get_by_label("Doe je mee?", exact=True).is_checked()
    assert status_of(site, "slachtoffer@example.org") is None
    assert status_of(site, "vierde@example.org") is None


def test_tagged_addresses_share_one_mailbox_s_daily_mails(site: RunningSite, page: Any) -> None:
    for n in range(5):
        sign_up(page, site, f"doelwit+{n}@example.org")
        assert heading(page) == "Kijk in je mailbox"  # the same answer every time

    def three_mails() -> list[str] | None:
        mails = [to for to in site.smtp.delivered_to() if to.startswith("doelwit")]
        return mails if len(mails) >= 3 else None

    assert len(wait_until(three_mails, what="three mails to the mailbox")) == 3
    # The fourth and fifth asked for no mail: the log says so, at once.
    for n in (3, 4):
        assert events_of(site.database, f"doelwit+{n}@example.org") == ["mail_limit_reached"]


# -- 3: a broken unsubscribe link shows first how to get out ------------------------------


def test_a_broken_unsubscribe_link_still_gets_me_out(site: RunningSite, page: Any) -> None:
    view = subscribe_and_confirm(site.flows, "ouder@example.org")
    page.goto(f"{site.base_url}/unsubscribe/xyz")
    assert heading(page) == "Afmelden voor de nieuwsbrief"
    forms = page.locator("main form")
    assert forms.count() == 1
    assert forms.first.get_attribute("action") == "/unsubscribe"
    assert page.get_by_role("button", name="Aanmelden").count() == 0
    assert (
        page.locator("main").get_by_role("link", name=site.settings.site.contact_email).is_visible()
    )

    page.get_by_label("E-mailadres").fill("ouder@example.org")
    page.get_by_role("button", name="Stuur me een afmeldlink").click()
    assert heading(page) == "Kijk in je mailbox"
    mail = site.wait_for_mail("ouder@example.org")
    assert link_in(mail, "/unsubscribe/") == view.unsubscribe_url
    page.goto(view.unsubscribe_url)
    page.get_by_role("button", name="Afmelden").click()
    assert heading(page) == "Je bent afgemeld"
    assert status_of(site, "ouder@example.org") == "unsubscribed"


# -- 6: one greeting, also in the archive -------------------------------------------------


def test_an_intro_that_greets_is_the_only_greeting_in_the_archive(
    site: RunningSite, page: Any
) -> None:
    intro = "Beste lezer,\n\nDeze maand waren we op actiedag in Utrecht."
    clock = FixedClock(datetime(2026, 11, 17, 8, 0, tzinfo=UTC))
    number = add_edition(site.database, clock, "sent", intro_markdown=intro)
    page.goto(f"{site.base_url}/archive/{number}")
    text = page.locator("main").inner_text()
    assert text.count("Beste") == 1
    assert "Deze maand waren we op actiedag in Utrecht." in text
