"""Leaving with one click: the link in every mail, and the one-click POST of mail programs."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.web.context import Web
from newsletter.web.public.refusals import plausible_token, unknown_token

router = APIRouter()


@router.get("/unsubscribe/{token}")
def show_unsubscribe(request: Request, web: Web, token: str) -> Response:
    subscriber = web.flows.subscriber_for(token, "unsubscribe") if plausible_token(token) else None
    if subscriber is None:
        return unknown_token(web, request)
    return web.pages.page("web/unsubscribe.html.j2", token=token, subscriber=subscriber)


@router.post("/unsubscribe/{token}")
async def unsubscribe(request: Request, web: Web, token: str) -> Response:
    # The body is not read: the one-click body (List-Unsubscribe=One-Click), the
    # page's button and an empty POST all mean the same thing.
    if not plausible_token(token):
        return unknown_token(web, request)
    done = await run_in_threadpool(web.flows.unsubscribe, token, web.requester(request, "web"))
    if not done:
        return unknown_token(web, request)
    return web.pages.page("web/unsubscribed.html.j2")
