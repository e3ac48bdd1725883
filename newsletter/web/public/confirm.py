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
    purpose = web.flows.pending_confirmation(token) if plausible_token(token) else None
    if purpose is None:
        return unknown_token(web, request)
    return web.pages.page("web/confirm.html.j2", request=request, token=token, purpose=purpose)


@router.post("/confirm/{token}")
async def confirm(request: Request, web: Web, token: str) -> Response:
    form = await web.checked_form(request)
    if isinstance(form, Response):
        return form
    if not plausible_token(token):
        return unknown_token(web, request)
    done = await run_in_threadpool(web.flows.confirm, token, web.requester(request, "web"))
    if done is None:
        return unknown_token(web, request)
    response = web.pages.page(
        "web/confirmed.html.j2",
        outcome=done.outcome,
        subscriber=done.subscriber,
        welcome_sent=bool(done.mails),
    )
    response.background = web.deliver_later(done.mails)
    return response
