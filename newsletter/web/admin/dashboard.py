"""The staff's start page: next run, subscriber counts, editions, last runs."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from newsletter.staff.dashboard import Overview, overview
from newsletter.web.admin.context import AdminContext


def build_dashboard_router(admin: AdminContext) -> APIRouter:
    router = APIRouter(prefix="/admin")
    web = admin.web

    def load() -> Overview:
        with web.database.session() as session:
            return overview(session, web.settings, now=web.clock())

    @router.get("")
    def dashboard(request: Request) -> Response:
        return admin.page("dashboard.html.j2", request, overview=load())

    return router
