"""The demo's sign-ups: three sample people through the real web app, over HTTP.

Each signs up as a browser or a program would (the form or the JSON API) and confirms
from their own mail.

The web app runs as `newsletter serve` runs it, in a thread of the demo's process, on a
socket the demo opened; the people talk to it over HTTP with httpx.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

import httpx
from rich.console import Console

from newsletter import __version__
from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, NewsletterError, SubscriberError
from newsletter.mail.mailsink import MailSink, SunkMail
from newsletter.web.csrf import FIELD_NAME as CSRF_FIELD
from newsletter.web.forms import HONEYPOT_FIELD
from newsletter.web.server import build_server
from subscribers.management import ListManagement

HOST = "127.0.0.1"
# The most the demo waits for the web app to answer, or for a mail to arrive: each wait
# ends as soon as what it waits for happens, so only a stuck demo ever waits this long,
# and a machine busy with other work does not make the demo fail.
WAIT_SECONDS = 120.0
# The consent log keeps the user agent: say honestly that it was the demo.
USER_AGENT = f"rvj-newsletter-demo/{__version__}"
CONFIRM_LINK = re.compile(r"https?://\S+/confirm/[A-Za-z0-9_-]+")
UNSUBSCRIBE_LINK = re.compile(r"https?://\S+/unsubscribe/[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class SamplePerson:
    """Someone the demo signs up: through the form or the API, with the themes they pick."""

    email: str
    name: str | None
    themes: tuple[str, ...]  # none: every theme
    who: str
    channel: Literal["form", "api"]

    @property
    def mailbox(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


SAMPLE_PEOPLE = (
    SamplePerson("anouk@example.org", "Anouk de Vries", ("doe-je-mee",), "a parent", "form"),
    SamplePerson("youssef@example.org", "Youssef", (), "a young person", "form"),
    SamplePerson(
        "m.bakker@example.org",
        None,
        ("opstarten-beweging", "mensen-en-initiatieven"),
        "a care worker",
        "api",
    ),
)


def sign_up_through_web_app(
    settings: Settings,
    database: Database,
    listener: socket.socket,
    sink: MailSink,
    out: Console,
) -> None:
    """Start the web app, sign every sample person up through it, and stop it again."""
    with _running_web_app(settings, database, listener) as base_url:
        out.print(f"web app: {base_url}", markup=False)
        _sign_up_sample_people(base_url, sink)
    _check_confirmed(settings, database)
    out.print("signed up through the web app, confirmed from the link in their mail:")
    for person in SAMPLE_PEOPLE:
        out.print(f"  {_describe(person, settings)}", markup=False)


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A socket listening on a free port of HOST, for the web app to serve on."""
    try:
        listener = socket.create_server((HOST, 0))
    except OSError as exc:
        raise NewsletterError(f"cannot listen on {HOST} for the web app: {exc}") from exc
    with listener:
        yield listener


@contextmanager
def _running_web_app(
    settings: Settings, database: Database, listener: socket.socket
) -> Iterator[str]:
    """The real web app (as `newsletter serve` runs it) on `listener`; yields its base URL."""
    port = int(listener.getsockname()[1])
    server = build_server(settings, database, host=HOST, port=port)
    # uvicorn installs its signal handlers only in the main thread, so in this one it
    # installs none: Ctrl-C reaches the demo, which then stops the server below.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="demo-web-app", daemon=True
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    level = uvicorn_log.level
    uvicorn_log.setLevel(logging.WARNING)  # its start and stop lines would drown the demo's
    thread.start()
    try:
        base_url = f"http://{HOST}:{port}"
        _wait_until_healthy(base_url, thread)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(WAIT_SECONDS)
        uvicorn_log.setLevel(level)
    if thread.is_alive():
        raise NewsletterError("the demo's web app did not stop")


def _wait_until_healthy(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    with _http_client(base_url) as client:
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not thread.is_alive():
                raise NewsletterError("the demo's web app stopped while starting")
            if time.monotonic() > deadline:
                raise NewsletterError(
                    f"the demo's web app did not answer within {WAIT_SECONDS:g} s"
                )
            time.sleep(0.05)


def _http_client(base_url: str) -> httpx.Client:
    # trust_env=False: no proxy from the environment; the demo talks to loopback only.
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT},
        timeout=WAIT_SECONDS,
        trust_env=False,
        follow_redirects=False,
    )


# -- signing up, as a browser or a program would ------------------------------------------


def _sign_up_sample_people(base_url: str, sink: MailSink) -> None:
    """Sign every sample person up and confirm them, each from a browser of their own."""
    for person in SAMPLE_PEOPLE:
        try:
            with _http_client(base_url) as browser:
                if person.channel == "form":
                    _sign_up_with_form(browser, person)
                else:
                    _sign_up_with_api(browser, person)
                _confirm_from_mail(browser, sink, person)
        except httpx.HTTPError as exc:
            raise SubscriberError(f"signing up {person.email} failed: {exc}") from exc


def _sign_up_with_form(browser: httpx.Client, person: SamplePerson) -> None:
    """GET the sign-up page (CSRF cookie and field), then POST the form as a browser does."""
    page = _expect(browser.get("/subscribe"), 200, "GET /subscribe")
    form = {
        CSRF_FIELD: _hidden_field(page.text, CSRF_FIELD),
        "email": person.email,
        "name": person.name or "",
        "themes": list(person.themes),
        HONEYPOT_FIELD: "",
    }
    _expect(browser.post("/subscribe", data=form), 200, "POST /subscribe")


def _sign_up_with_api(client: httpx.Client, person: SamplePerson) -> None:
    """POST /api/subscribe with a JSON body, as a partner's website would."""
    body: dict[str, object] = {"email": person.email, "themes": list(person.themes)}
    if person.name:
        body["name"] = person.name
    _expect(client.post("/api/subscribe", json=body), 202, "POST /api/subscribe")


def _confirm_from_mail(browser: httpx.Client, sink: MailSink, person: SamplePerson) -> None:
    """Wait for the confirmation mail, open its link and press the button."""
    mail = sink.wait_for(
        lambda sunk: person.email in sunk.recipients and _confirm_link(sunk) is not None,
        timeout=WAIT_SECONDS,
    )
    link = _confirm_link(mail) if mail is not None else None
    if link is None:
        raise DeliveryError(
            f"no confirmation mail reached {person.email} within {WAIT_SECONDS:g} s"
        )
    page = _expect(browser.get(link), 200, "GET /confirm/…")
    button = {CSRF_FIELD: _hidden_field(page.text, CSRF_FIELD)}
    _expect(browser.post(link, data=button), 200, "POST /confirm/…")
    # The welcome mail goes after the answer: wait for it, so the mailbox is complete.
    welcome = sink.wait_for(
        lambda sunk: person.email in sunk.recipients and is_welcome(sunk), timeout=WAIT_SECONDS
    )
    if welcome is None:
        raise DeliveryError(f"no welcome mail reached {person.email} within {WAIT_SECONDS:g} s")


def is_welcome(mail: SunkMail) -> bool:
    """The welcome mail: the one mail to a subscriber with their unsubscribe link that
    is not a newsletter (which carries List-Unsubscribe)."""
    message = mail.message()
    return message["List-Unsubscribe"] is None and UNSUBSCRIBE_LINK.search(mail.text()) is not None


def _confirm_link(mail: SunkMail) -> str | None:
    """The /confirm/ link in a mail's text part."""
    found = CONFIRM_LINK.search(mail.text())
    return found.group(0) if found else None


class _HiddenFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "input" and fields.get("type") == "hidden" and fields.get("name"):
            self.values[str(fields["name"])] = fields.get("value") or ""


def _hidden_field(html: str, name: str) -> str:
    """The value of the hidden form field `name` on a page."""
    parser = _HiddenFields()
    parser.feed(html)
    if name not in parser.values:
        raise SubscriberError(f"the page has no {name} field")
    return parser.values[name]


def _expect(response: httpx.Response, status: int, request: str) -> httpx.Response:
    if response.status_code != status:
        raise SubscriberError(
            f"{request} answered HTTP {response.status_code}, not {status} as it should"
        )
    return response


def _check_confirmed(settings: Settings, database: Database) -> None:
    people = ListManagement(settings, database, clock=utc_now)
    confirmed = {row.email for row in people.subscribers(status="confirmed")}
    missing = [person.email for person in SAMPLE_PEOPLE if person.email not in confirmed]
    if missing:
        raise SubscriberError(f"not confirmed after signing up: {', '.join(missing)}")


def _describe(person: SamplePerson, settings: Settings) -> str:
    themes = ", ".join(settings.themes[slug].name for slug in person.themes) or "all themes"
    channel = "the form" if person.channel == "form" else "the API"
    return f"{person.mailbox}, {person.who}, through {channel}: {themes}"
