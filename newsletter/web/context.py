"""What every route needs, gathered once by `create_app` and handed to the routes.

`create_app` puts the WebContext on `app.state`; a route asks for it with a parameter
`web: Web`, the FastAPI dependency that reads it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

import jinja2
from fastapi import Depends
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.templating import template_environment
from newsletter.editions.archive import WebVersions
from newsletter.mail.mailer import OutgoingMail, SmtpMailer
from newsletter.mail.queue_sender import QueuedMailSender
from newsletter.web.clients import (
    IPAddress,
    IPNetwork,
    client_address,
    limit_key,
    parse_networks,
)
from newsletter.web.csrf import CsrfGuard
from newsletter.web.forms import FormFields, read_form
from newsletter.web.ratelimit import SlidingWindowLimiter, Verdict
from newsletter.web.rendering import PageRenderer, is_staff_path
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.models import USER_AGENT_MAX_CHARS
from subscribers.service import ListService

Send = Callable[[OutgoingMail], None]


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    database: Database
    clock: Clock
    flows: SubscriberFlows
    send: Send
    environment: jinja2.Environment
    pages: PageRenderer
    csrf: CsrfGuard
    signup_limiter: SlidingWindowLimiter
    trusted_proxies: tuple[IPNetwork, ...]
    web_versions: WebVersions
    # `newsletter serve`'s: sign-ups queue their mail, and this sends it (mail/queue.py).
    mail_sender: QueuedMailSender | None = None

    def _client(self, request: Request) -> tuple[IPAddress | None, str | None]:
        peer = request.client.host if request.client else None
        forwarded_for = request.headers.getlist("x-forwarded-for")
        return client_address(peer, forwarded_for, self.trusted_proxies), peer

    def client_ip(self, request: Request) -> str | None:
        """The client's IP address as the consent log gets it (it applies `ip_policy`)."""
        address, _ = self._client(request)
        return str(address) if address is not None else None

    def requester(self, request: Request, source: Literal["form", "api", "web"]) -> Requester:
        agent = request.headers.get("user-agent")
        return Requester(
            source=source,
            ip=self.client_ip(request),
            user_agent=agent[:USER_AGENT_MAX_CHARS] if agent else None,
        )

    def client_key(self, request: Request) -> str:
        """The key rate limits count this request's client under."""
        address, peer = self._client(request)
        return limit_key(address, peer)

    def signup_verdict(self, request: Request) -> Verdict:
        """Whether this client may sign up now (counts nothing: see `count_signup`)."""
        return self.signup_limiter.check(self.client_key(request))

    def count_signup(self, request: Request) -> None:
        """Count an accepted sign-up (or address change) against its client's limit.

        Only accepted requests count: a mistyped address, a form the CSRF check refused
        or a robot's honeypot costs nobody their budget (docs/subscribers.md).
        """
        self.signup_limiter.count(self.client_key(request))

    async def checked_form(self, request: Request) -> FormFields | Response:
        """The submitted form when its CSRF token is right; else the page to answer
        (400 for a form that cannot be read, 403 for a missing or wrong token)."""
        form = await read_form(request)
        staff = is_staff_path(request.url.path)
        if form is None:
            return self.pages.problem("bad_request", status=400, staff=staff)
        if not self.csrf.is_valid(request, form.csrf_token):
            return self.pages.problem("csrf", status=403, staff=staff)
        return form

    def deliver_later(self, mails: Iterable[OutgoingMail]) -> BackgroundTasks:
        """Tasks that send `mails` after the response went out, whatever they are.

        Whether a request produced a confirmation, a notice or nothing at all must not
        show in the answer, not even in how long it took.
        """
        tasks = BackgroundTasks()
        for mail in mails:
            tasks.add_task(self.flows.deliver, mail, self.send)
        return tasks


def build_web_context(
    settings: Settings, database: Database, *, clock: Clock, send: Send, queue_mails: bool = False
) -> WebContext:
    """The context; with `queue_mails`, sign-ups queue their mail for a `mail_sender`
    that sends it through [smtp] (`send` then serves the other mails)."""
    environment = template_environment(settings)
    csrf = CsrfGuard(secure=urlsplit(settings.site.base_url).scheme == "https")
    sender = None
    if queue_mails:
        sender = QueuedMailSender(
            database,
            SmtpMailer(settings, clock=clock),
            clock=clock,
            record=ListService(settings, database, clock=clock).record_mail_outcomes,
        )
    return WebContext(
        settings=settings,
        database=database,
        clock=clock,
        flows=SubscriberFlows(
            settings, database, clock=clock, mail_queued=sender.wake if sender else None
        ),
        send=send,
        environment=environment,
        pages=PageRenderer(settings, environment, csrf),
        csrf=csrf,
        signup_limiter=SlidingWindowLimiter(
            limit=settings.web.signup_limit_per_ip,
            window=timedelta(minutes=settings.web.signup_window_minutes),
            clock=clock,
        ),
        trusted_proxies=parse_networks(settings.web.trusted_proxies),
        web_versions=WebVersions(settings, database, environment=environment),
        mail_sender=sender,
    )


# Async: a plain function would cost every request a trip to the thread pool.
async def web_context(request: Request) -> WebContext:
    """The app's WebContext, which `create_app` put on `app.state`."""
    web = request.app.state.web
    assert isinstance(web, WebContext)
    return web


Web = Annotated[WebContext, Depends(web_context)]
