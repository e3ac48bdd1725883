"""The public archive: /archive, /archive/{N} (the web version) and /archive/feed.xml."""

from __future__ import annotations

from fastapi import APIRouter

from newsletter.web.context import WebContext


def build_archive_router(web: WebContext) -> APIRouter:
    router = APIRouter()
    return router
