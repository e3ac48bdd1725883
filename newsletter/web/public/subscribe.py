"""Signing up: the form (also at /), and its POST, which mails a confirmation link."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.core.errors import InvalidInput
from newsletter.web.context import Web, WebContext
from newsletter.web.forms import HONEYPOT_FIELD, FormFields, SignupFields

router = APIRouter()
FORM = "web/subscribe.html.j2"
CHECK_MAIL = "web/check_mail.html.j2"


@router.get("/")
def root() -> Response:
    return RedirectResponse("/subscribe", status_code=303)


@router.get("/subscribe")
def show_subscribe(request: Request, web: Web) -> Response:
    return web.pages.page(FORM, request=request, form=SignupFields(), errors={})


@router.post("/subscribe")
async def subscribe(request: Request, web: Web) -> Response:
    form = await web.checked_form(request)
    if isinstance(form, Response):
        return form
    return await sign_up(web, request, form, invalid_status=400)


async def sign_up(
    web: WebContext, request: Request, form: FormFields, *, invalid_status: int
) -> Response:
    """A sign-up form that may be read (CSRF or origin checked by the caller): the honeypot,
    the client's limit, the request, and the page to answer with."""
    fields = SignupFields.from_form(form)
    if form.first(HONEYPOT_FIELD):
        # A robot: the same answer as everyone gets, and nothing stored or sent.
        return web.pages.page(CHECK_MAIL)
    verdict = web.signup_verdict(request)
    if not verdict.allowed:
        return wait_page(web, request, fields, verdict.retry_after)
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
        return web.pages.page(
            FORM, request=request, status=invalid_status, form=fields, errors=exc.problems
        )
    web.count_signup(request)
    response = web.pages.page(CHECK_MAIL)
    response.background = web.deliver_later(mails)
    return response


def wait_page(
    web: WebContext, request: Request, fields: SignupFields, retry_after: int
) -> Response:
    """The sign-up form with a request to wait: what was typed stays, to send again later."""
    return web.pages.page(
        FORM,
        request=request,
        status=429,
        headers={"Retry-After": str(retry_after)},
        form=fields,
        errors={},
        wait_minutes=max(1, -(-retry_after // 60)),
    )
