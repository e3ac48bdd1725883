"""The staff's start page: next run, subscriber counts, editions, last runs."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from newsletter.staff.dashboard import load_overview
from newsletter.web.admin.context import Admin

router = APIRouter(prefix="/admin")


@router.get("")
def dashboard(request: Request, admin: Admin) -> Response:
    web = admin.web
    overview = load_overview(web.database, web.settings, now=web.clock())
    return admin.page("dashboard.html.j2", request, overview=overview)
