"""The JSON API: `POST /api/subscribe`, the same double opt-in as the form, for programs.

Answers (the `message` texts are English, for the developer reading them):

    202  {"status": "accepted", ...}        whatever the state of the address
    400  {"error": "malformed_json", ...}   the body is not JSON
    413  {"error": "too_large", ...}        the body is over the limit
    415  {"error": "unsupported_media_type", ...}  not sent as application/json
    422  {"errors": {field: code}, ...}     wrong shape, wrong types or invalid values
    429  {"error": "too_many_requests", ...} with Retry-After

Only `application/json` is accepted, so a browser on another site cannot post here
without a CORS preflight, which this API never grants.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.core.errors import InvalidInput
from newsletter.web.context import Web

ACCEPTED = {
    "status": "accepted",
    "message": "If the address can receive mail, a message is on its way to it.",
}
SIGNUP_KEYS = ("email", "name", "themes")
_TYPE_PROBLEMS = {
    "email": "email must be a string",
    "name": "name must be a string or null",
    "themes": "themes must be a list of theme slugs (strings)",
}


class ShapeError(Exception):
    """The JSON is well-formed but not a sign-up request; `problems` maps field to code."""

    def __init__(self, problems: dict[str, str], message: str) -> None:
        super().__init__(message)
        self.problems = problems
        self.message = message


def api_error(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message}, status_code=status, headers=dict(headers or {})
    )


def invalid(problems: Mapping[str, str], message: str) -> JSONResponse:
    return JSONResponse({"errors": dict(problems), "message": message}, status_code=422)


def parse_signup(data: Any) -> tuple[str, str | None, list[str]]:
    """Email, name and themes from a decoded JSON body, or ShapeError saying what is off."""
    if not isinstance(data, dict):
        raise ShapeError(
            {"body": "not_an_object"}, 'the body must be a JSON object: {"email": ...}'
        )
    unexpected = sorted(key for key in data if key not in SIGNUP_KEYS)
    if unexpected:
        problems = {key[:40]: "unexpected" for key in unexpected[:10]}
        raise ShapeError(problems, f"unexpected keys; use only {', '.join(SIGNUP_KEYS)}")
    email = data.get("email", "")
    name = data.get("name")
    themes = data.get("themes")
    problems = {}
    if email is None:
        email = ""
    if not isinstance(email, str):
        problems["email"] = "wrong_type"
    if name is not None and not isinstance(name, str):
        problems["name"] = "wrong_type"
    if themes is None:
        themes = []
    if not isinstance(themes, list) or not all(isinstance(slug, str) for slug in themes):
        problems["themes"] = "wrong_type"
    if problems:
        raise ShapeError(problems, "; ".join(_TYPE_PROBLEMS[key] for key in problems))
    # JSON can carry lone surrogates ("\ud800"), which no database stores as text.
    if not _is_unicode(email):
        problems["email"] = "invalid"
    if name is not None and not _is_unicode(name):
        problems["name"] = "not_a_name"
    if not all(_is_unicode(slug) for slug in themes):
        problems["themes"] = "unknown"
    if problems:
        raise ShapeError(problems, "text that is not valid Unicode")
    return email, (name if name and name.strip() else None), list(dict.fromkeys(themes))


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


router = APIRouter(prefix="/api")


@router.post("/subscribe")
async def subscribe(request: Request, web: Web) -> Response:
    if not _is_json(request.headers.get("content-type")):
        return api_error(415, "unsupported_media_type", "send the body as application/json")
    body = await request.body()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return api_error(400, "malformed_json", "the body is not valid JSON (UTF-8)")
    try:
        email, name, themes = parse_signup(data)
    except ShapeError as exc:
        return invalid(exc.problems, exc.message)
    verdict = web.signup_verdict(request)
    if not verdict.allowed:
        return api_error(
            429,
            "too_many_requests",
            f"too many sign-up requests from this address; retry in {verdict.retry_after} s",
            {"Retry-After": str(verdict.retry_after)},
        )
    try:
        mails = await run_in_threadpool(
            web.flows.request_subscription,
            email=email,
            name=name,
            themes=themes,
            requester=web.requester(request, "api"),
            consent_text=web.pages.consent_text,
        )
    except InvalidInput as exc:
        described = ", ".join(f"{field}: {code}" for field, code in exc.problems.items())
        return invalid(exc.problems, f"invalid input ({described})")
    web.count_signup(request)
    return JSONResponse(ACCEPTED, status_code=202, background=web.deliver_later(mails))
