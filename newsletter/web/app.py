"""The web app: `create_app` wires the subscriber flows, pages, API and guards together.

Layers, outermost first: security headers (and a plain page for a crash), the body cap,
FastAPI's error handling, then the routes: the public pages (public/), the API
(api.py), the archive (archive.py), the staff pages (admin/) and site.py. Everything the
app uses is passed in: settings, database, clock and `send` (how one mail goes out).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Scope

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import NewsletterError
from newsletter.web import admin, api, archive, public, site
from newsletter.web.admin.context import build_admin_context, login_url
from newsletter.web.admin.sessions import LoginRequired
from newsletter.web.api import api_error
from newsletter.web.context import Send, build_web_context
from newsletter.web.security import BodyLimit, SecurityHeaders

# No form or API request of ours comes near this; anything larger is refused unread.
MAX_BODY_BYTES = 20 * 1024


def _wants_json(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return path.startswith("/api/") or path == "/healthz"


def create_app(settings: Settings, database: Database, *, clock: Clock, send: Send) -> FastAPI:
    """The app for `settings`; `send` delivers one mail (after the response went out)."""
    settings.require_secret_key()
    web = build_web_context(settings, database, clock=clock, send=send)
    pages = web.pages

    # No generated docs: their pages load scripts and fonts from a CDN.
    app = FastAPI(
        title=f"Nieuwsbrief {settings.site.name}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # Where the routes find them (the `Web` and `Admin` dependencies).
    app.state.web = web
    app.state.admin = build_admin_context(web)
    app.include_router(public.router)
    app.include_router(api.router)
    app.include_router(archive.router)
    app.include_router(admin.router)
    app.include_router(site.router)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        kind = kinds.get(exc.status_code, "bad_request")
        status = exc.status_code if exc.status_code in kinds else 400
        if _wants_json(request.scope):
            return api_error(status, kind, str(exc.detail).lower(), headers)
        return pages.problem(kind, status=status, headers=headers)

    def validation_error(request: Request, exc: Exception) -> Response:
        return api_error(422, "invalid", "the request does not have the expected shape")

    def login_required(request: Request, exc: Exception) -> Response:
        # A page (GET) leads to the login and back; an action without a session is
        # refused, never carried out after a login it did not have.
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(login_url(target), status_code=303)
        return pages.problem("login_required", status=401)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(RequestValidationError, validation_error)

    def too_large(scope: Scope) -> Response:
        if _wants_json(scope):
            return api_error(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        return pages.problem("too_large", status=413)

    def server_error(scope: Scope) -> Response:
        if _wants_json(scope):
            return api_error(500, "server_error", "something went wrong on our side")
        try:
            return pages.problem("server_error", status=500)
        except NewsletterError:
            return PlainTextResponse("Er ging iets mis aan onze kant.", status_code=500)

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, too_large=too_large)
    app.add_middleware(SecurityHeaders, server_error=server_error)
    return app
