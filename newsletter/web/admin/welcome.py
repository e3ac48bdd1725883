"""`/admin/welcome/{token}`: a new colleague sets a password with their one-time link.

The only staff route besides the login that needs no session: the link's token (from
the invitation mail) is the proof, and it works once.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import AccountError
from newsletter.staff.accounts import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS
from newsletter.staff.invitations import accept, invited_user
from newsletter.web.admin.accounts import password_problem
from newsletter.web.admin.context import Admin, AdminContext

router = APIRouter(prefix="/admin")


def welcome_page(
    admin: AdminContext,
    request: Request,
    token: str,
    *,
    status: int = 200,
    problem: str | None = None,
) -> Response:
    with admin.web.database.session() as session:
        user = invited_user(session, token, now=admin.web.clock())
        name = user.name if user is not None else None
    if name is None:
        return admin.page("welcome.html.j2", request, status=404, login_name=None)
    return admin.page(
        "welcome.html.j2",
        request,
        status=status,
        login_name=name,
        token=token,
        problem=problem,
        min_chars=MIN_PASSWORD_CHARS,
        max_chars=MAX_PASSWORD_CHARS,
    )


@router.get("/welcome/{token}")
def show_welcome(request: Request, admin: Admin, token: str) -> Response:
    return welcome_page(admin, request, token)


@router.post("/welcome/{token}")
async def set_first_password(request: Request, admin: Admin, token: str) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    new = form.first("new_password")
    problem = password_problem(new, form.first("repeat_password"))
    if problem is not None:
        return welcome_page(admin, request, token, status=400, problem=problem)
    try:
        await run_in_threadpool(_accept, admin, token, new)
    except AccountError:
        return welcome_page(admin, request, token, status=404)
    return admin.see_other("/admin/login?welcome=1")


def _accept(admin: AdminContext, token: str, password: str) -> None:
    with admin.web.database.session() as session:
        accept(session, token, password, now=admin.web.clock())
