"""A subscriber's own page: name and themes, a new address (confirmed by mail), leaving.

The link in every mail leads here; the page's one form says what to do in `action`.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import InvalidInput
from newsletter.web.context import Web, WebContext
from newsletter.web.forms import SignupFields, read_form
from newsletter.web.public.refusals import broken_leave_link, plausible_token, too_many_requests
from subscribers.records import SubscriberView
from subscribers.tokens import link_token

PREFERENCE_ACTIONS = ("save", "change_email", "unsubscribe")

router = APIRouter()


def preferences_page(
    web: WebContext,
    request: Request,
    token: str,
    subscriber: SubscriberView,
    *,
    fields: SignupFields | None = None,
    errors: dict[str, str] | None = None,
    new_email: str = "",
    saved: bool = False,
    status: int = 200,
) -> Response:
    return web.pages.page(
        "web/preferences.html.j2",
        request=request,
        status=status,
        token=token,
        subscriber=subscriber,
        form=fields,
        errors=errors or {},
        new_email=new_email,
        saved=saved,
    )


@router.get("/preferences/{token}")
def show_preferences(request: Request, web: Web, token: str) -> Response:
    subscriber = web.flows.subscriber_for(token, "preferences") if plausible_token(token) else None
    if subscriber is None:
        return broken_leave_link(web, request)
    return preferences_page(web, request, token, subscriber)


@router.post("/preferences/{token}")
async def change_preferences(request: Request, web: Web, token: str) -> Response:
    form = await read_form(request)
    if form is None:
        return web.pages.problem("bad_request", status=400)
    action = form.first("action")
    if not web.csrf.is_valid(request, form.csrf_token):
        return web.pages.problem("csrf", status=403)
    if action == "change_email":
        # A new address gets a confirmation mail: it counts as a sign-up, once accepted.
        verdict = web.signup_verdict(request)
        if not verdict.allowed:
            return too_many_requests(web, verdict.retry_after)
    if action not in PREFERENCE_ACTIONS:
        return web.pages.problem("bad_request", status=400)
    subscriber = (
        await run_in_threadpool(web.flows.subscriber_for, token, "preferences")
        if plausible_token(token)
        else None
    )
    if subscriber is None:
        return broken_leave_link(web, request)
    if action == "unsubscribe":
        return await leave(web, request, subscriber)
    if action == "change_email":
        return await change_address(web, request, token, subscriber, form.first("new_email"))
    return await save_preferences(web, request, token, subscriber, SignupFields.from_form(form))


async def leave(web: WebContext, request: Request, subscriber: SubscriberView) -> Response:
    secret = web.settings.require_secret_key()
    unsubscribe_token = link_token(secret, "unsubscribe", subscriber.public_id)
    await run_in_threadpool(web.flows.unsubscribe, unsubscribe_token, web.requester(request, "web"))
    return web.pages.page("web/unsubscribed.html.j2")


async def change_address(
    web: WebContext, request: Request, token: str, subscriber: SubscriberView, new_email: str
) -> Response:
    try:
        mails = await run_in_threadpool(
            web.flows.request_address_change,
            token,
            new_email=new_email,
            requester=web.requester(request, "web"),
        )
    except InvalidInput as exc:
        # The service names the field "email"; on this page it is the new address.
        errors = {f"new_{field}": code for field, code in exc.problems.items()}
        return preferences_page(
            web, request, token, subscriber, errors=errors, new_email=new_email, status=400
        )
    web.count_signup(request)
    # The same answer whoever the new address belongs to, and whether a mail goes.
    response = web.pages.page("web/address_change_sent.html.j2")
    response.background = web.deliver_later(mails)
    return response


async def save_preferences(
    web: WebContext, request: Request, token: str, subscriber: SubscriberView, fields: SignupFields
) -> Response:
    try:
        updated = await run_in_threadpool(
            web.flows.update_preferences,
            token,
            name=fields.name_or_none,
            themes=list(fields.themes),
            requester=web.requester(request, "web"),
        )
    except InvalidInput as exc:
        return preferences_page(
            web, request, token, subscriber, fields=fields, errors=exc.problems, status=400
        )
    if updated is None:
        return broken_leave_link(web, request)
    return preferences_page(web, request, token, updated, saved=True)
