"""Confirming a sign-up or a new address: the link shows a button, its POST confirms."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.web.context import Web
from newsletter.web.public.refusals import plausible_token, unknown_token

router = APIRouter()


@router.get("/confirm/{token}")
def show_confirm(request: Request, web: Web, token: str) -> Response:
    if not plausible_token(token) or not web.flows.confirmation_is_valid(token):
        return unknown_token(web, request)
    return web.pages.page("web/confirm.html.j2", request=request, token=token)


@router.post("/confirm/{token}")
async def confirm(request: Request, web: Web, token: str) -> Response:
    form = await web.checked_form(request)
    if isinstance(form, Response):
        return form
    if not plausible_token(token):
        return unknown_token(web, request)
    subscriber = await run_in_threadpool(web.flows.confirm, token, web.requester(request, "web"))
    if subscriber is None:
        return unknown_token(web, request)
    return web.pages.page("web/confirmed.html.j2", subscriber=subscriber)
