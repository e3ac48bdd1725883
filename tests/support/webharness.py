"""The web app under test: real settings, database and aiosmtpd, driven by TestClient.

`web_harness` starts an aiosmtpd server, builds the app exactly as `serve` would (with
`SmtpMailer.send_now` as its way to send) and hands out TestClients, each with its own
client address and cookie jar. Helpers read CSRF tokens from pages, links from the mails
aiosmtpd received, and every row of the database, to prove a request changed nothing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.core.db import Database, open_database
from newsletter.core.models import Base
from newsletter.mail.mailer import SmtpMailer
from newsletter.web.app import create_app
from newsletter.web.server import build_server
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import Subscriber
from subscribers.records import SubscriberView
from tests.support.clock import FixedClock
from tests.support.smtpserver import Received, TestSmtpServer, free_port
from tests.support.waiting import joined, wait_until

BASE_URL = "http://testserver"
CLIENT_IP = "198.51.100.7"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([A-Za-z0-9_-]+)"')
CONSENT = "Ik wil de nieuwsbrief ontvangen (test)."
STAFF_NAME = "redactie"
STAFF_PASSWORD = "een lang genoeg wachtwoord"
TABLES_WITH_PEOPLE = (
    "subscribers",
    "confirmation_tokens",
    "consent_texts",
    "consent_events",
    "suppressions",
)


def csrf_token(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def without_csrf(html: str) -> str:
    """The page with its CSRF token blanked, for comparing two answers byte by byte."""
    return CSRF_FIELD.sub('name="csrf_token" value="…"', html)


def links_in(message: EmailMessage) -> list[str]:
    body = message.get_body(("plain",))
    assert body is not None
    return re.findall(r"https?://\S+", body.get_content())


def token_in(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def post_form(client: TestClient, path: str, data: dict[str, Any], *, form_page: str) -> Any:
    """Open `form_page` as a browser would (cookie and field), then post `data` to `path`."""
    token = csrf_token(client.get(form_page).text)
    return client.post(path, data={"csrf_token": token, **data})


def signup(client: TestClient, email: str, **fields: Any) -> Any:
    return post_form(client, "/subscribe", {"email": email, **fields}, form_page="/subscribe")


def log_in(client: TestClient, name: str = STAFF_NAME, password: str = STAFF_PASSWORD) -> Any:
    """Log in on /admin/login as the browser would; the answer (303 when it worked)."""
    token = csrf_token(client.get("/admin/login").text)
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "name": name, "password": password, "next": "/admin"},
        follow_redirects=False,
    )


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """The app's routes, also those of included routers (FastAPI 0.165 nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)


@dataclass
class WebHarness:
    settings: Settings
    database: Database
    clock: FixedClock
    smtp: TestSmtpServer
    app: FastAPI
    flows: SubscriberFlows
    people: ListManagement
    clients: list[TestClient] = field(default_factory=list)

    def client(self, ip: str = CLIENT_IP, **options: Any) -> TestClient:
        """A browser of its own: its own address and cookie jar."""
        client = TestClient(self.app, base_url=BASE_URL, client=(ip, 50_000), **options)
        self.clients.append(client)
        return client

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table that holds anything about people."""
        rows: dict[str, list[tuple[Any, ...]]] = {}
        with self.database.session() as session:
            for table in Base.metadata.sorted_tables:
                if table.name in TABLES_WITH_PEOPLE:
                    result = session.execute(select(table).order_by(*table.primary_key))
                    rows[table.name] = [tuple(row) for row in result]
        return rows

    def messages_to(self, address: str) -> list[EmailMessage]:
        return [item.message() for item in self.smtp.received if address in item.recipients]

    def confirm_url_for(self, address: str) -> str:
        """The confirm link in the newest mail to `address`."""
        messages = self.messages_to(address)
        assert messages, f"no mail to {address}"
        return next(url for url in links_in(messages[-1]) if "/confirm/" in url)

    # -- putting addresses into a state through the service itself --------------------

    def request(self, email: str, *, name: str | None = None, themes: tuple[str, ...] = ()) -> str:
        """Sign `email` up through the service; the confirmation token mailed to it."""
        mails = self.flows.request_subscription(
            email=email,
            name=name,
            themes=list(themes),
            requester=Requester("cli"),
            consent_text=CONSENT,
        )
        for mail in mails:
            self.flows.deliver(mail, SmtpMailer(self.settings, clock=self.clock).send_now)
        return token_in(self.confirm_url_for(email))

    def confirmed(self, email: str, **fields: Any) -> SubscriberView:
        done = self.flows.confirm(self.request(email, **fields), Requester("web"))
        assert done is not None
        return done.subscriber

    def unsubscribed(self, email: str) -> SubscriberView:
        view = self.confirmed(email)
        assert self.flows.unsubscribe(token_in(view.unsubscribe_url), Requester("web"))
        return view

    def erased(self, email: str) -> None:
        self.confirmed(email)
        self.people.erase(email, Requester("cli"))

    def with_status(self, email: str, status: str) -> None:
        """A confirmed subscriber moved to `status` (bounced, complained) in the table."""
        self.confirmed(email)
        with self.database.session() as session:
            session.execute(
                update(Subscriber).where(Subscriber.email == email).values(status=status)
            )


@contextmanager
def web_harness(
    make_settings: Callable[..., Settings], clock: FixedClock, **sections: dict[str, Any]
) -> Iterator[WebHarness]:
    """The app on a fresh database with aiosmtpd behind it; `sections` adjust settings."""
    smtp = TestSmtpServer().start()
    web = {"signup_limit_per_ip": 1000, **sections.pop("web", {})}
    site = {"base_url": BASE_URL, **sections.pop("site", {})}
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp.port}, web=web, site=site, **sections
    )
    database = open_database(settings.database_url)
    send = SmtpMailer(settings, clock=clock).send_now
    app = create_app(settings, database, clock=clock, send=send)
    harness = WebHarness(
        settings,
        database,
        clock,
        smtp,
        app,
        SubscriberFlows(settings, database, clock=clock),
        ListManagement(settings, database, clock=clock),
    )
    try:
        yield harness
    finally:
        for client in harness.clients:
            client.close()
        database.dispose()
        smtp.stop()


@dataclass
class RunningSite:
    base_url: str
    settings: Settings
    database: Database
    smtp: TestSmtpServer
    flows: SubscriberFlows
    people: ListManagement

    def wait_for_mail(self, address: str, count: int = 1) -> EmailMessage:
        """The newest mail to `address` once `count` have come (they go after the answer)."""

        def arrived() -> list[Received] | None:
            received = [item for item in self.smtp.received if address in item.recipients]
            return received if len(received) >= count else None

        return wait_until(arrived, what=f"{count} mail(s) to {address}")[-1].message()


@contextmanager
def running_site(
    make_settings: Callable[..., Settings], **sections: dict[str, Any]
) -> Iterator[RunningSite]:
    """The real server (`build_server`: uvicorn, in a thread) on a free port on 127.0.0.1,
    with aiosmtpd behind it and the real clock; `sections` adjust settings."""
    smtp = TestSmtpServer().start()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        site={"base_url": base_url}, smtp={"host": "127.0.0.1", "port": smtp.port}, **sections
    )
    database = open_database(settings.database_url)
    server = build_server(settings, database, host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the server stopped while starting"
        return bool(server.started)

    wait_until(started, what="the server to start")
    try:
        yield RunningSite(
            base_url,
            settings,
            database,
            smtp,
            SubscriberFlows(settings, database, clock=utc_now),
            ListManagement(settings, database, clock=utc_now),
        )
    finally:
        server.should_exit = True
        try:
            joined(thread, what="the server")
        finally:
            database.dispose()
            smtp.stop()
