"""Signing up: the form (also at /), and its POST, which mails a confirmation link."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.core.errors import InvalidInput
from newsletter.web.context import Web
from newsletter.web.forms import HONEYPOT_FIELD, SignupFields
from newsletter.web.public.refusals import too_many_requests

router = APIRouter()
FORM = "web/subscribe.html.j2"


@router.get("/")
def root() -> Response:
    return RedirectResponse("/subscribe", status_code=303)


@router.get("/subscribe")
def show_subscribe(request: Request, web: Web) -> Response:
    return web.pages.page(FORM, request=request, form=SignupFields(), errors={})


@router.post("/subscribe")
async def subscribe(request: Request, web: Web) -> Response:
    verdict = web.count_signup(request)
    if not verdict.allowed:
        return too_many_requests(web, verdict.retry_after)
    form = await web.checked_form(request)
    if isinstance(form, Response):
        return form
    fields = SignupFields.from_form(form)
    if form.first(HONEYPOT_FIELD):
        # A robot: the same answer as everyone gets, and nothing stored or sent.
        return web.pages.page("web/check_mail.html.j2")
    try:
        mails = await run_in_threadpool(
            web.flows.request_subscription,
            email=fields.email,
            name=fields.name_or_none,
            themes=list(fields.themes),
            requester=web.requester(request, "form"),
            consent_text=web.pages.consent_text,
        )
    except InvalidInput as exc:
        return web.pages.page(FORM, request=request, status=400, form=fields, errors=exc.problems)
    response = web.pages.page("web/check_mail.html.j2")
    response.background = web.deliver_later(mails)
    return response
