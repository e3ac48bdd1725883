"""Leaving: the link in every mail, mail programs' one-click POST, a link to leave by mail.

The last is for whoever has no working link (an old mail, a damaged link).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import InvalidInput
from newsletter.web.context import Web
from newsletter.web.forms import HONEYPOT_FIELD
from newsletter.web.public.refusals import broken_leave_link, plausible_token, too_many_requests

router = APIRouter()


LEAVE = "web/leave.html.j2"


@router.get("/unsubscribe")
def show_leave(request: Request, web: Web) -> Response:
    return web.pages.page(LEAVE, request=request, broken=False, errors={})


@router.post("/unsubscribe")
async def request_leave_link(request: Request, web: Web) -> Response:
    """Mail a link to leave to an address on the list (for those without a working link)."""
    form = await web.checked_form(request)
    if isinstance(form, Response):
        return form
    if form.first(HONEYPOT_FIELD):
        return web.pages.page("web/leave_sent.html.j2")
    verdict = web.signup_verdict(request)
    if not verdict.allowed:
        return too_many_requests(web, verdict.retry_after)
    email = form.first("email")
    try:
        mails = await run_in_threadpool(
            web.flows.request_leave_link, email=email, requester=web.requester(request, "web")
        )
    except InvalidInput as exc:
        return web.pages.page(
            LEAVE, request=request, status=400, broken=False, errors=exc.problems, email=email
        )
    web.count_signup(request)
    response = web.pages.page("web/leave_sent.html.j2")
    response.background = web.deliver_later(mails)
    return response


@router.get("/unsubscribe/{token}")
def show_unsubscribe(request: Request, web: Web, token: str) -> Response:
    subscriber = web.flows.subscriber_for(token, "unsubscribe") if plausible_token(token) else None
    if subscriber is None:
        return broken_leave_link(web, request)
    return web.pages.page("web/unsubscribe.html.j2", token=token, subscriber=subscriber)


@router.post("/unsubscribe/{token}")
async def unsubscribe(request: Request, web: Web, token: str) -> Response:
    # The body is not read: the one-click body (List-Unsubscribe=One-Click), the
    # page's button and an empty POST all mean the same thing.
    if not plausible_token(token):
        return broken_leave_link(web, request)
    done = await run_in_threadpool(web.flows.unsubscribe, token, web.requester(request, "web"))
    if not done:
        return broken_leave_link(web, request)
    return web.pages.page("web/unsubscribed.html.j2")
