"""How the app answers what it refuses or fails: JSON for programs, a Dutch page for people.

The API and the health check answer in JSON (api.py's shape); everything else gets the
problem page, whose `kind` picks its text in messages.j2.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Scope

from newsletter.core.errors import NewsletterError
from newsletter.web.admin.context import login_url
from newsletter.web.admin.sessions import LoginRequired
from newsletter.web.api import api_error
from newsletter.web.rendering import PageRenderer, is_staff_path
from newsletter.web.security import MAX_BODY_BYTES

# The statuses that keep their own kind of answer; any other HTTP error becomes a 400.
_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def for_staff(scope: Scope) -> bool:
    return is_staff_path(str(scope.get("path", "")))


def wants_json(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return path.startswith("/api/") or path == "/healthz"


@dataclass(frozen=True)
class ErrorAnswers:
    """The answers, for the exception handlers and for the layers around the app."""

    pages: PageRenderer

    def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        kind = _KINDS.get(exc.status_code, "bad_request")
        status = exc.status_code if exc.status_code in _KINDS else 400
        if wants_json(request.scope):
            return api_error(status, kind, str(exc.detail).lower(), headers)
        return self.pages.problem(
            kind, status=status, headers=headers, staff=for_staff(request.scope)
        )

    def validation_error(self, request: Request, exc: Exception) -> Response:
        return api_error(422, "invalid", "the request does not have the expected shape")

    def login_required(self, request: Request, exc: Exception) -> Response:
        # A page (GET) leads to the login and back; an action without a session is
        # refused, never carried out after a login it did not have.
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(login_url(target), status_code=303)
        return self.pages.problem("login_required", status=401, staff=True)

    def too_large(self, scope: Scope) -> Response:
        if wants_json(scope):
            return api_error(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        return self.pages.problem("too_large", status=413, staff=for_staff(scope))

    def server_error(self, scope: Scope) -> Response:
        if wants_json(scope):
            return api_error(500, "server_error", "something went wrong on our side")
        try:
            return self.pages.problem("server_error", status=500, staff=for_staff(scope))
        except NewsletterError:
            return PlainTextResponse("Er ging iets mis aan onze kant.", status_code=500)


def add_error_handlers(app: FastAPI, answers: ErrorAnswers) -> None:
    app.add_exception_handler(HTTPException, answers.http_error)
    app.add_exception_handler(LoginRequired, answers.login_required)
    app.add_exception_handler(RequestValidationError, answers.validation_error)
