"""What the staff pages share: the site's context, the sessions, the login limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from newsletter.delivery.background import BackgroundSends
from newsletter.staff.accounts import StaffMember
from newsletter.staff.review import DraftReview
from newsletter.web.admin.sessions import LoginRequired, StaffSessions
from newsletter.web.context import WebContext
from newsletter.web.ratelimit import SlidingWindowLimiter
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
    login_by_client: SlidingWindowLimiter
    login_by_name: SlidingWindowLimiter
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

    def member(self, request: Request) -> StaffMember:
        """The logged-in staff member (the protected router's dependency put it there)."""
        member = getattr(request.state, "staff", None)
        if not isinstance(member, StaffMember):
            raise LoginRequired()
        return member

    def see_other(self, path: str) -> Response:
        return RedirectResponse(path, status_code=303)
