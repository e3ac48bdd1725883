"""What the public pages answer when they refuse: a link token of no one, too many sign-ups."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from newsletter.web.context import WebContext

# Anything else in a token's place cannot be one of ours; the service need not see it.
_PLAUSIBLE_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def plausible_token(token: str) -> bool:
    return _PLAUSIBLE_TOKEN.fullmatch(token) is not None


def unknown_token(web: WebContext, request: Request) -> Response:
    """The page for a link that is wrong, used or expired (it offers a new mail)."""
    return web.pages.page("web/unknown_token.html.j2", request=request, status=404)


def broken_leave_link(web: WebContext, request: Request) -> Response:
    """The page for an unsubscribe or preferences link that does not work: how to leave."""
    return web.pages.page("web/leave.html.j2", request=request, status=404, broken=True, errors={})


def too_many_requests(web: WebContext, retry_after: int) -> Response:
    return web.pages.problem(
        "too_many_requests", status=429, headers={"Retry-After": str(retry_after)}
    )
