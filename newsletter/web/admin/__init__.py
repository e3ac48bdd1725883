"""The staff's pages under /admin: login, dashboard, draft review, subscribers."""

from __future__ import annotations

from fastapi import APIRouter

from newsletter.web.context import WebContext


def build_admin_router(web: WebContext) -> APIRouter:
    router = APIRouter(prefix="/admin")
    return router
