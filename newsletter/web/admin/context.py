"""What the staff pages share: the site's context, the sessions, the login limits, the guard.

`create_app` puts the AdminContext on `app.state`; a route asks for it with a parameter
`admin: Admin`, and for the logged-in staff member with `member: Staff`. `staff_member`
is also the guard that every protected route depends on (see admin/__init__.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from newsletter.staff.accounts import StaffMember
from newsletter.staff.review import DraftReview
from newsletter.staff.sends import BackgroundSends
from newsletter.web.admin.sessions import LoginRequired, StaffSessions
from newsletter.web.context import WebContext
from newsletter.web.ratelimit import LoginLimits
from subscribers.management import ListManagement

# Where a login may lead back to: a path under /admin, nothing that leaves the site.
_SAFE_NEXT = re.compile(r"/admin(/[A-Za-z0-9/_.-]*)?(\?[A-Za-z0-9=&_.%-]*)?")


def safe_next(value: str | None) -> str:
    """`value` when it is a path under /admin, else the dashboard."""
    if value and _SAFE_NEXT.fullmatch(value) and "//" not in value and ".." not in value:
        return value
    return "/admin"


def login_url(next_path: str) -> str:
    return f"/admin/login?next={quote(safe_next(next_path), safe='/')}"


@dataclass(frozen=True)
class AdminContext:
    web: WebContext
    sessions: StaffSessions
    logins: LoginLimits
    sends: BackgroundSends
    people: ListManagement
    review: DraftReview

    def page(
        self,
        template: str,
        request: Request,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A staff page: every one holds a form (logout at least), so it gets a CSRF token."""
        member: StaffMember | None = getattr(request.state, "staff", None)
        return self.web.pages.page(
            f"web/admin/{template}", request=request, status=status, staff=member, **context
        )

    def not_found(self) -> Response:
        return self.web.pages.problem("not_found", status=404, staff=True)

    def see_other(self, path: str) -> Response:
        return RedirectResponse(path, status_code=303)


def build_admin_context(web: WebContext) -> AdminContext:
    settings = web.settings.web
    window = timedelta(minutes=settings.login_window_minutes)
    return AdminContext(
        web=web,
        sessions=StaffSessions(
            database=web.database,
            clock=web.clock,
            idle=timedelta(minutes=settings.staff_idle_minutes),
            lifetime=timedelta(hours=settings.staff_session_hours),
            secure=urlsplit(web.settings.site.base_url).scheme == "https",
        ),
        logins=LoginLimits.build(limit=settings.login_limit, window=window, clock=web.clock),
        sends=BackgroundSends(web.settings, web.database, clock=web.clock),
        people=ListManagement(web.settings, web.database, clock=web.clock),
        review=DraftReview(
            web.settings, web.database, clock=web.clock, environment=web.environment
        ),
    )


async def admin_context(request: Request) -> AdminContext:
    """The app's AdminContext, which `create_app` put on `app.state`."""
    admin = request.app.state.admin
    assert isinstance(admin, AdminContext)
    return admin


Admin = Annotated[AdminContext, Depends(admin_context)]


def staff_member(request: Request, admin: Admin) -> StaffMember:
    """The staff member whose live session the request carries; else LoginRequired.

    Pages render the member from `request.state` (the login page has none).
    """
    member = admin.sessions.member(request)
    if member is None:
        raise LoginRequired()
    request.state.staff = member
    return member


Staff = Annotated[StaffMember, Depends(staff_member)]
