"""Logging in and out of the staff pages; only failed logins count toward the limits."""

from __future__ import annotations

import math
from functools import partial

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.staff.accounts import MAX_PASSWORD_CHARS, verify_login
from newsletter.web.admin.context import Admin, AdminContext, safe_next
from newsletter.web.forms import read_form

router = APIRouter(prefix="/admin")


def login_page(
    admin: AdminContext,
    request: Request,
    *,
    next_path: str,
    name: str = "",
    failed: bool = False,
    status: int = 200,
    retry_after: int | None = None,
    welcome: bool = False,
) -> Response:
    response = admin.page(
        "login.html.j2",
        request,
        status=status,
        next_path=next_path,
        user_name=name,
        failed=failed,
        welcome=welcome,
        wait_minutes=None if retry_after is None else math.ceil(retry_after / 60),
        password_max_chars=MAX_PASSWORD_CHARS,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.get("/login")
def show_login(
    request: Request, admin: Admin, next: str | None = None, welcome: str | None = None
) -> Response:
    return login_page(admin, request, next_path=safe_next(next), welcome=welcome == "1")


@router.post("/login")
async def login(request: Request, admin: Admin) -> Response:
    web = admin.web
    form = await web.checked_form(request)
    if isinstance(form, Response):
        return form
    name = form.first("name").strip().lower()
    next_path = safe_next(form.first("next"))
    client = web.client_key(request)
    verdict = admin.logins.begin(name[:60], client)
    if not verdict.allowed:
        return login_page(
            admin,
            request,
            next_path=next_path,
            name=name,
            status=429,
            retry_after=verdict.retry_after,
        )
    member = await run_in_threadpool(
        partial(verify_login, now=web.clock()), web.database, name, form.first("password")
    )
    if member is None:
        admin.logins.failed(name[:60], client)
        return login_page(admin, request, next_path=next_path, name=name, failed=True, status=401)
    admin.logins.succeeded(client)
    response = admin.see_other(next_path)
    await run_in_threadpool(admin.sessions.start, response, member)
    return response


@router.post("/logout")
async def logout(request: Request, admin: Admin) -> Response:
    form = await read_form(request)
    if form is None or not admin.web.csrf.is_valid(request, form.csrf_token):
        return admin.web.pages.problem("csrf", status=403, staff=True)
    response = admin.see_other("/admin/login")
    await run_in_threadpool(admin.sessions.end, request, response)
    return response
