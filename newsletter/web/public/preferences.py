"""The HTML pages: sign up, confirm, unsubscribe and preferences, all in Dutch.

A GET never changes anything: pages reached from a link in a mail show a button, and only
its POST acts, so the link scanners of mail systems cannot confirm or unsubscribe anyone.
Every form carries a CSRF token, except the unsubscribe button, whose POST must also work
for a mail program's one-click request (RFC 8058) without cookies: there the secret
token in the URL is the whole proof, and anyone holding it could unsubscribe anyway.
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.core.errors import InvalidInput
from newsletter.web.context import WebContext
from newsletter.web.forms import HONEYPOT_FIELD, SignupFields, read_form
from subscribers.records import SubscriberView
from subscribers.tokens import link_token

# Anything else in a token's place cannot be one of ours; the service need not see it.
_PLAUSIBLE_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,100}")

PREFERENCE_ACTIONS = ("save", "change_email", "unsubscribe")


def _plausible(token: str) -> bool:
    return _PLAUSIBLE_TOKEN.fullmatch(token) is not None


def build_pages_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    pages = web.pages

    def retry_after(seconds: int) -> Response:
        return pages.problem("too_many_requests", status=429, headers={"Retry-After": str(seconds)})

    def forbidden() -> Response:
        return pages.problem("csrf", status=403)

    def unreadable() -> Response:
        return pages.problem("bad_request", status=400)

    def unknown_token(request: Request) -> Response:
        return pages.page("web/unknown_token.html.j2", request=request, status=404)

    def subscribe_form(
        request: Request,
        *,
        fields: SignupFields,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        return pages.page(
            "web/subscribe.html.j2",
            request=request,
            status=status,
            form=fields,
            errors=errors or {},
        )

    @router.get("/")
    def root() -> Response:
        return RedirectResponse("/subscribe", status_code=303)

    @router.get("/subscribe")
    def show_subscribe(request: Request) -> Response:
        return subscribe_form(request, fields=SignupFields())

    @router.post("/subscribe")
    async def subscribe(request: Request) -> Response:
        verdict = web.count_signup(request)
        if not verdict.allowed:
            return retry_after(verdict.retry_after)
        form = await web.checked_form(request)
        if isinstance(form, Response):
            return form
        fields = SignupFields.from_form(form)
        if form.first(HONEYPOT_FIELD):
            # A robot: the same answer as everyone gets, and nothing stored or sent.
            return pages.page("web/check_mail.html.j2")
        try:
            mails = await run_in_threadpool(
                web.flows.request_subscription,
                email=fields.email,
                name=fields.name_or_none,
                themes=list(fields.themes),
                requester=web.requester(request, "form"),
                consent_text=pages.consent_text,
            )
        except InvalidInput as exc:
            return subscribe_form(request, fields=fields, errors=exc.problems, status=400)
        response = pages.page("web/check_mail.html.j2")
        response.background = web.deliver_later(mails)
        return response

    @router.get("/confirm/{token}")
    def show_confirm(request: Request, token: str) -> Response:
        if not _plausible(token) or not web.flows.confirmation_is_valid(token):
            return unknown_token(request)
        return pages.page("web/confirm.html.j2", request=request, token=token)

    @router.post("/confirm/{token}")
    async def confirm(request: Request, token: str) -> Response:
        form = await web.checked_form(request)
        if isinstance(form, Response):
            return form
        if not _plausible(token):
            return unknown_token(request)
        subscriber = await run_in_threadpool(
            web.flows.confirm, token, web.requester(request, "web")
        )
        if subscriber is None:
            return unknown_token(request)
        return pages.page("web/confirmed.html.j2", subscriber=subscriber)

    @router.get("/unsubscribe/{token}")
    def show_unsubscribe(request: Request, token: str) -> Response:
        subscriber = web.flows.subscriber_for(token, "unsubscribe") if _plausible(token) else None
        if subscriber is None:
            return unknown_token(request)
        return pages.page("web/unsubscribe.html.j2", token=token, subscriber=subscriber)

    @router.post("/unsubscribe/{token}")
    async def unsubscribe(request: Request, token: str) -> Response:
        # The body is not read: the one-click body (List-Unsubscribe=One-Click), the
        # page's button and an empty POST all mean the same thing.
        if not _plausible(token):
            return unknown_token(request)
        done = await run_in_threadpool(web.flows.unsubscribe, token, web.requester(request, "web"))
        if not done:
            return unknown_token(request)
        return pages.page("web/unsubscribed.html.j2")

    def preferences_page(
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
        return pages.page(
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
    def show_preferences(request: Request, token: str) -> Response:
        subscriber = web.flows.subscriber_for(token, "preferences") if _plausible(token) else None
        if subscriber is None:
            return unknown_token(request)
        return preferences_page(request, token, subscriber)

    @router.post("/preferences/{token}")
    async def change_preferences(request: Request, token: str) -> Response:
        form = await read_form(request)
        if form is None:
            return unreadable()
        action = form.first("action")
        if action == "change_email":
            # A new address gets a confirmation mail: it counts as a sign-up.
            verdict = web.count_signup(request)
            if not verdict.allowed:
                return retry_after(verdict.retry_after)
        if not web.csrf.is_valid(request, form.csrf_token):
            return forbidden()
        if action not in PREFERENCE_ACTIONS:
            return unreadable()
        subscriber = (
            await run_in_threadpool(web.flows.subscriber_for, token, "preferences")
            if _plausible(token)
            else None
        )
        if subscriber is None:
            return unknown_token(request)
        if action == "unsubscribe":
            return await leave(request, subscriber)
        if action == "change_email":
            return await change_address(request, token, subscriber, form.first("new_email"))
        return await save_preferences(request, token, subscriber, SignupFields.from_form(form))

    async def leave(request: Request, subscriber: SubscriberView) -> Response:
        secret = web.settings.require_secret_key()
        unsubscribe_token = link_token(secret, "unsubscribe", subscriber.public_id)
        await run_in_threadpool(
            web.flows.unsubscribe, unsubscribe_token, web.requester(request, "web")
        )
        return pages.page("web/unsubscribed.html.j2")

    async def change_address(
        request: Request, token: str, subscriber: SubscriberView, new_email: str
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
                request, token, subscriber, errors=errors, new_email=new_email, status=400
            )
        # The same answer whoever the new address belongs to, and whether a mail goes.
        response = pages.page("web/address_change_sent.html.j2")
        response.background = web.deliver_later(mails)
        return response

    async def save_preferences(
        request: Request, token: str, subscriber: SubscriberView, fields: SignupFields
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
                request, token, subscriber, fields=fields, errors=exc.problems, status=400
            )
        if updated is None:
            return unknown_token(request)
        return preferences_page(request, token, updated, saved=True)

    return router
