"""An edition's results for staff: the counts per state and the list of failures."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import EditionError
from newsletter.staff.results import load_results
from newsletter.web.admin.context import Admin
from newsletter.web.admin.editions import Number

router = APIRouter(prefix="/admin")


@router.get("/editions/{number}/results")
async def show_results(request: Request, admin: Admin, number: Number) -> Response:
    try:
        results = await run_in_threadpool(load_results, admin.web.database, number)
    except EditionError:
        return admin.not_found()
    return admin.page("edition_results.html.j2", request, results=results)
