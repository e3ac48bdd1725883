"""`/admin/account` (your own password) and, for admins only, `/admin/staff`.

Admins invite a colleague, send a new link, remove an account and see who logged in
when. Routes only translate; staff/accounts.py, invitations.py and team.py do the work.
Every admin-only route answers 403 to an editor.
"""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import AccountError, DeliveryError
from newsletter.staff.accounts import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    NAME_PATTERN,
    ROLES,
    StaffMember,
    change_own_password,
)
from newsletter.staff.invitations import INVITATION_HOURS, invite_and_mail
from newsletter.staff.team import load_team, remove_colleague
from newsletter.web.admin.context import Admin, AdminContext, Staff
from newsletter.web.forms import FormFields

router = APIRouter(prefix="/admin")

# Codes the pages report back (?done=...); the words are in the templates.
ACCOUNT_DONE = ("password",)
STAFF_DONE = ("invited", "link_sent", "removed")


def password_problem(new: str, repeated: str) -> str | None:
    """A code for what is wrong with a new password (words in the template), or None."""
    if len(new) < MIN_PASSWORD_CHARS:
        return "too_short"
    if len(new) > MAX_PASSWORD_CHARS:
        return "too_long"
    if new != repeated:
        return "different"
    return None


def _done(request: Request, codes: tuple[str, ...]) -> str | None:
    value = request.query_params.get("done")
    return value if value in codes else None


def _done_name(request: Request) -> str:
    name = request.query_params.get("name", "")
    return name if NAME_PATTERN.fullmatch(name) else ""


# -- your own account -------------------------------------------------------------------


def account_page(
    admin: AdminContext, request: Request, *, problem: str | None = None, status: int = 200
) -> Response:
    return admin.page(
        "account.html.j2",
        request,
        status=status,
        problem=problem,
        done=_done(request, ACCOUNT_DONE),
        min_chars=MIN_PASSWORD_CHARS,
        max_chars=MAX_PASSWORD_CHARS,
    )


@router.get("/account")
def show_account(request: Request, admin: Admin, member: Staff) -> Response:
    return account_page(admin, request)


@router.post("/account/password")
async def change_password(request: Request, admin: Admin, member: Staff) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    new = form.first("new_password")
    problem = password_problem(new, form.first("repeat_password"))
    if problem is not None:
        return account_page(admin, request, problem=problem, status=400)
    try:
        await run_in_threadpool(_change, admin, member, form.first("current_password"), new)
    except AccountError:
        return account_page(admin, request, problem="wrong_current", status=400)
    # Every session ended with the old password; this browser gets a new one.
    response = admin.see_other("/admin/account?done=password")
    await run_in_threadpool(admin.sessions.start, response, member)
    return response


def _change(admin: AdminContext, member: StaffMember, current: str, new: str) -> None:
    with admin.web.database.session() as session:
        change_own_password(session, member, current, new)


# -- the staff (admins only) ------------------------------------------------------------


def forbidden(admin: AdminContext, request: Request) -> Response:
    return admin.page("forbidden.html.j2", request, status=403)


def staff_page(
    admin: AdminContext,
    request: Request,
    *,
    status: int = 200,
    problem: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    team = load_team(admin.web.database, now=admin.web.clock())
    values: dict[str, Any] = {
        "team": team,
        "problem": problem,
        "typed": typed or {},
        "done": _done(request, STAFF_DONE),
        "done_name": _done_name(request),
        "roles": ROLES,
        "invitation_hours": INVITATION_HOURS,
    }
    return admin.page("staff.html.j2", request, status=status, **values)


@router.get("/staff")
def show_staff(request: Request, admin: Admin, member: Staff) -> Response:
    if not member.is_admin:
        return forbidden(admin, request)
    return staff_page(admin, request)


def _invitation_problem(form: FormFields) -> tuple[str | None, str]:
    """What is wrong with the invitation form (a code), and the normalized address."""
    name, role = form.first("name").strip().lower(), form.first("role")
    if NAME_PATTERN.fullmatch(name) is None:
        return "bad_name", ""
    if role not in ROLES:
        return "bad_role", ""
    try:
        address = validate_email(form.first("email").strip(), check_deliverability=False)
    except EmailNotValidError:
        return "bad_email", ""
    return None, address.normalized


@router.post("/staff")
async def invite_colleague(request: Request, admin: Admin, member: Staff) -> Response:
    if not member.is_admin:
        return forbidden(admin, request)
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    typed = {key: form.first(key).strip()[:254] for key in ("name", "email", "role")}
    problem, address = _invitation_problem(form)
    if problem is not None:
        return staff_page(admin, request, status=400, problem=problem, typed=typed)
    name = typed["name"].lower()
    try:
        await run_in_threadpool(_invite, admin, name, address, form.first("role"), member.name)
    except AccountError:
        return staff_page(admin, request, status=409, problem="name_taken", typed=typed)
    except DeliveryError:
        return staff_page(admin, request, status=502, problem="mail_failed")
    return admin.see_other(f"/admin/staff?done=invited&name={name}")


def _invite(admin: AdminContext, name: str, email: str | None, role: str, invited_by: str) -> None:
    web = admin.web
    invite_and_mail(
        web.database,
        web.settings,
        web.send,
        name,
        email=email,
        role=role,
        invited_by=invited_by,
        now=web.clock(),
    )


@router.post("/staff/{name}/link")
async def send_new_link(request: Request, admin: Admin, member: Staff, name: str) -> Response:
    if not member.is_admin:
        return forbidden(admin, request)
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    try:
        await run_in_threadpool(_invite, admin, name, None, "editor", member.name)
    except AccountError:
        return staff_page(admin, request, status=409, problem="no_link")
    except DeliveryError:
        return staff_page(admin, request, status=502, problem="mail_failed")
    return admin.see_other(f"/admin/staff?done=link_sent&name={name}")


@router.post("/staff/{name}/remove")
async def remove(request: Request, admin: Admin, member: Staff, name: str) -> Response:
    if not member.is_admin:
        return forbidden(admin, request)
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    if form.first("confirm") != "yes":
        return staff_page(admin, request, status=400, problem="not_confirmed")
    try:
        await run_in_threadpool(remove_colleague, admin.web.database, name, by=member)
    except AccountError:
        return staff_page(admin, request, status=409, problem="cannot_remove")
    return admin.see_other(f"/admin/staff?done=removed&name={name}")
