"""The routes that are no page: the site's own static files, and the health check."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from newsletter.web.context import Web

router = APIRouter()


@router.get("/static/{name}")
def static_file(web: Web, name: str) -> Response:
    response = web.pages.static(name)
    if response is None:
        raise HTTPException(404)
    return response


@router.get("/healthz")
def health(web: Web) -> Response:
    # Says only whether the database answers, never what or where it is.
    if not web.database.is_reachable():
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})
