"""The staff's view of the list: search, one person with their consent log, export.

A person is named in URLs by their public id only, never by address or row id: URLs
end up in server logs and browser histories. The pages only read; the export is the
Dutch spreadsheet file of subscribers/export.py, written out as it is read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from newsletter.core.paging import parse_page_number
from newsletter.web.admin.context import Admin, AdminContext, Staff
from subscribers.export import spreadsheet_pieces
from subscribers.mentions import cut_address
from subscribers.models import EMAIL_MAX_CHARS, STATUSES
from subscribers.search import SearchResults

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
SEARCH_MAX_CHARS = EMAIL_MAX_CHARS
# What secrets.token_urlsafe produces; anything else is no subscriber's id.
PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Search:
    """What staff asked for: part of an address or name, a status, a page."""

    text: str = ""
    status: str | None = None
    page: int = 1

    def url(self, page: int = 1) -> str:
        query = {"q": self.text, "status": self.status or "", "page": page if page > 1 else ""}
        encoded = urlencode({key: value for key, value in query.items() if value})
        return "/admin/subscribers" + (f"?{encoded}" if encoded else "")


def read_search(params: Mapping[str, str]) -> tuple[Search, str | None]:
    """The search in a query string, and what is wrong with it ("text", "status", "page")."""
    text = params.get("q", "").strip()
    status = params.get("status") or None
    page = parse_page_number(params.get("page") or "1")
    if len(text) > SEARCH_MAX_CHARS:
        return Search(text[:SEARCH_MAX_CHARS]), "text"
    if status is not None and status not in STATUSES:
        return Search(text), "status"
    if page is None:
        return Search(text, status), "page"
    return Search(text, status, page), None


def export_url(status: str | None) -> str:
    return "/admin/subscribers/export.csv" + (f"?{urlencode({'status': status})}" if status else "")


def export_file_name(status: str | None, today: str) -> str:
    return f"abonnees-{status}-{today}.csv" if status else f"abonnees-{today}.csv"


router = APIRouter(prefix="/admin")


def search_page(
    admin: AdminContext,
    request: Request,
    search: Search,
    *,
    results: SearchResults | None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    done = request.query_params.get("done")
    return admin.page(
        "subscribers.html.j2",
        request,
        status=status,
        search=search,
        results=results,
        problem=problem,
        counts=admin.people.counts(),
        statuses=STATUSES,
        search_max_chars=SEARCH_MAX_CHARS,
        export_url=export_url(search.status),
        done=done if done in ("erased",) else None,
    )


@router.get("/subscribers")
def find_subscribers(request: Request, admin: Admin) -> Response:
    search, problem = read_search(request.query_params)
    if problem is not None:
        return search_page(admin, request, search, results=None, problem=problem, status=400)
    results = admin.people.search(
        text=search.text, status=search.status, page=search.page, page_size=PAGE_SIZE
    )
    if results is None:
        return search_page(admin, request, search, results=None, problem="page", status=400)
    return search_page(admin, request, search, results=results)


# Before /subscribers/{public_id}, which would otherwise take "export.csv" for an id.
@router.get("/subscribers/export.csv")
def export_subscribers(request: Request, admin: Admin, member: Staff) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        return search_page(admin, request, Search(), results=None, problem="status", status=400)
    lines = admin.people.spreadsheet(status=status)
    # Who took the list home, and when: the log is where an audit would look.
    logger.info(
        "subscriber list exported by staff member %r (status: %s)", member.name, status or "all"
    )
    web = admin.web
    today = web.clock().astimezone(ZoneInfo(web.settings.site.timezone)).date().isoformat()
    return StreamingResponse(
        spreadsheet_pieces(lines),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export_file_name(status, today)}"'
        },
    )


def person_page(
    admin: AdminContext,
    request: Request,
    public_id: str,
    *,
    done: str | None = None,
    errors: Mapping[str, str] | None = None,
    refused: str | None = None,
    status: int = 200,
) -> Response:
    """One person's page, with what an action reported (`done`) or refused."""
    if PUBLIC_ID.fullmatch(public_id) is None:
        return admin.not_found()
    person = admin.people.person(public_id)
    if person is None:
        return admin.not_found()
    # What mail servers wrote back often quotes the address: the page shows why, not who.
    replies = [
        cut_address(row.last_reply, person.email) if row.last_reply else None
        for row in person.deliveries
    ]
    return admin.page(
        "subscriber.html.j2",
        request,
        status=status,
        person=person,
        replies=replies,
        done=done,
        errors=dict(errors or {}),
        refused=refused,
    )


@router.get("/subscribers/{public_id}")
def show_subscriber(
    request: Request, admin: Admin, public_id: str, done: str | None = None
) -> Response:
    return person_page(admin, request, public_id, done=done)
