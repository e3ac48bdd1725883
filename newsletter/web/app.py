"""The web app: `create_app` builds the contexts, includes the routers, adds the layers.

Layers, outermost first: security headers (and a plain page for a crash), the body cap,
FastAPI's error handling (errors.py), then the routes: the public pages (public/), the
sign-up form on other websites (public/embed.py: no CSRF, the origin checked), the
API (api.py), the archive (archive.py), the staff pages (admin/) and the static files
and health check (site.py). Everything the app uses is passed in: settings, database,
clock and `send` (how one mail goes out).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.mail.queue_sender import QueuedMailSender
from newsletter.web import admin, api, archive, public, site
from newsletter.web.admin.context import build_admin_context
from newsletter.web.context import Send, build_web_context
from newsletter.web.errors import ErrorAnswers, add_error_handlers
from newsletter.web.public import embed
from newsletter.web.security import (
    IMPORT_BODY_BYTES,
    IMPORT_PATHS,
    MAX_BODY_BYTES,
    BodyLimit,
    SecurityHeaders,
)


def create_app(
    settings: Settings, database: Database, *, clock: Clock, send: Send, queue_mails: bool = False
) -> FastAPI:
    """The app for `settings`; `send` delivers one mail (after the response went out).

    With `queue_mails` (`newsletter serve`), a sign-up's confirmation is queued in its
    own transaction instead, and a task of the app sends the queue through [smtp] from
    start-up to shutdown (mail/queue_sender.py).
    """
    settings.require_secret_key()
    web = build_web_context(settings, database, clock=clock, send=send, queue_mails=queue_mails)
    # No generated docs: their pages load scripts and fonts from a CDN.
    app = FastAPI(
        title=f"Nieuwsbrief {settings.site.name}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=sending(web.mail_sender) if web.mail_sender is not None else None,
    )
    # Where the routes find them (the `Web` and `Admin` dependencies).
    app.state.web = web
    app.state.admin = build_admin_context(web)
    include_routers(app)
    answers = ErrorAnswers(web.pages)
    add_error_handlers(app, answers)
    add_layers(app, answers)
    return app


def sending(sender: QueuedMailSender) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the queue's sender runs while the app does; at shutdown it
    finishes the batch in hand, and what is left waits for the next start."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(sender.run(), name="queued-mail-sender")
        try:
            yield
        finally:
            sender.stop()
            await task

    return lifespan


def include_routers(app: FastAPI) -> None:
    app.include_router(public.router)
    app.include_router(embed.router)
    app.include_router(api.router)
    app.include_router(archive.router)
    app.include_router(admin.router)
    app.include_router(site.router)


def add_layers(app: FastAPI, answers: ErrorAnswers) -> None:
    """The ASGI layers around the app; the one added last is the outermost."""
    app.add_middleware(
        BodyLimit,
        max_bytes=MAX_BODY_BYTES,
        too_large=answers.too_large,
        larger=dict.fromkeys(IMPORT_PATHS, IMPORT_BODY_BYTES),
    )
    app.add_middleware(SecurityHeaders, server_error=answers.server_error)
