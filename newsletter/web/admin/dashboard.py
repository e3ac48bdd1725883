"""The staff's start page: warnings, next run, subscriber counts and growth, editions, runs."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from newsletter.staff.dashboard import load_overview
from newsletter.staff.growth_chart import growth_charts
from newsletter.web.admin.context import Admin

router = APIRouter(prefix="/admin")


@router.get("")
def dashboard(request: Request, admin: Admin) -> Response:
    web = admin.web
    overview = load_overview(web.database, web.settings, now=web.clock())
    charts = growth_charts(overview.growth)
    return admin.page("dashboard.html.j2", request, overview=overview, charts=charts)
