"""The staff's pages under /admin: login, dashboard, draft review, subscribers.

Every route but the login page sits on a router whose dependency demands a live staff
session, so a new page is protected by being added there. Without a session a GET is
sent to the login page (and back afterwards); anything else gets 401.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from starlette.requests import Request

from newsletter.core.templating import template_environment
from newsletter.delivery.background import BackgroundSends
from newsletter.staff.accounts import StaffMember
from newsletter.staff.review import DraftReview
from newsletter.web.admin.context import AdminContext
from newsletter.web.admin.dashboard import build_dashboard_router
from newsletter.web.admin.editions import build_editions_router
from newsletter.web.admin.login import build_login_router
from newsletter.web.admin.people import build_people_router
from newsletter.web.admin.sessions import LoginRequired, StaffSessions
from newsletter.web.context import WebContext
from newsletter.web.ratelimit import SlidingWindowLimiter
from subscribers.management import ListManagement


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
        login_by_client=SlidingWindowLimiter(
            limit=settings.login_limit, window=window, clock=web.clock
        ),
        login_by_name=SlidingWindowLimiter(
            limit=settings.login_limit, window=window, clock=web.clock
        ),
        sends=BackgroundSends(web.settings, web.database, clock=web.clock),
        people=ListManagement(web.settings, web.database, clock=web.clock),
        review=DraftReview(
            web.settings,
            web.database,
            clock=web.clock,
            environment=template_environment(web.settings),
        ),
    )


def build_admin_router(web: WebContext, admin: AdminContext | None = None) -> APIRouter:
    admin = admin or build_admin_context(web)

    def staff_member(request: Request) -> StaffMember:
        member = admin.sessions.member(request)
        if member is None:
            raise LoginRequired()
        request.state.staff = member
        return member

    router = APIRouter()
    router.include_router(build_login_router(admin))
    guard = [Depends(staff_member)]
    router.include_router(build_dashboard_router(admin), dependencies=guard)
    router.include_router(build_editions_router(admin), dependencies=guard)
    router.include_router(build_people_router(admin), dependencies=guard)
    return router
