"""The public archive: /archive, /archive/{N} (the web version) and /archive/feed.xml.

What is public, and how it looks, is decided in `newsletter.editions.archive`; these
routes only read the request, call it, and answer. The archive holds nothing personal,
so unlike the other pages its answers may be kept by browsers and proxies for a while,
and each carries an ETag so that a feed reader polling the feed gets a 304 when nothing
changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.paging import parse_page_number
from newsletter.editions.archive import (
    archive_page,
    feed_entries,
    parse_edition_number,
    render_feed,
)
from newsletter.editions.compose import image_hosts
from newsletter.web.context import Web, WebContext
from newsletter.web.security import mail_document_policy

FEED_PATH = "/archive/feed.xml"
ATOM_MEDIA_TYPE = "application/atom+xml; charset=utf-8"
# The list and the feed change when an edition goes out; a sent edition never changes,
# but its page does when staff change the templates.
LIST_MAX_AGE = 300
FEED_MAX_AGE = 900
EDITION_MAX_AGE = 3600


def allowed_image_origins(origins: Iterable[str], hosts: frozenset[str]) -> list[str]:
    """The image origins of a web version whose host the settings name (image_hosts):
    an image a template of the staff's own pulls from elsewhere is not loaded either."""
    return [origin for origin in origins if urlsplit(origin).hostname in hosts]


def _entity_tag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _public(
    request: Request,
    body: bytes,
    *,
    media_type: str,
    max_age: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """`body` with headers that let anyone keep it `max_age` seconds; 304 when the
    request's If-None-Match names it already."""
    tag = _entity_tag(body)
    caching = {**(headers or {}), "Cache-Control": f"public, max-age={max_age}", "ETag": tag}
    known = [value.strip() for value in request.headers.get("if-none-match", "").split(",")]
    if tag in known or f"W/{tag}" in known:
        return Response(status_code=304, headers=caching)
    return Response(body, media_type=media_type, headers=caching)


router = APIRouter()


def not_found(web: WebContext) -> Response:
    return web.pages.problem("not_found", status=404)


@router.get("/archive")
def show_archive(request: Request, web: Web) -> Response:
    wanted = parse_page_number(request.query_params.get("page", "1"))
    if wanted is None:
        return not_found(web)
    with web.database.session() as session:
        page = archive_page(session, page=wanted)
    if page is None:
        return not_found(web)
    rendered = web.pages.page("web/archive.html.j2", page=page, feed_url=FEED_PATH)
    return _public(request, bytes(rendered.body), media_type="text/html", max_age=LIST_MAX_AGE)


# Before /archive/{number}, which would otherwise take "feed.xml" for a number.
@router.get(FEED_PATH)
def show_feed(request: Request, web: Web) -> Response:
    with web.database.session() as session:
        entries = feed_entries(session, web.settings)
    feed = render_feed(entries, web.settings, environment=web.environment, now=web.clock())
    return _public(request, feed.encode("utf-8"), media_type=ATOM_MEDIA_TYPE, max_age=FEED_MAX_AGE)


@router.get("/archive/{number}")
async def show_edition(request: Request, web: Web, number: str) -> Response:
    edition_number = parse_edition_number(number)
    if edition_number is None:
        return not_found(web)
    # Composing runs MJML and premailer: never on the event loop.
    version = await run_in_threadpool(web.web_versions.get, edition_number)
    if version is None:
        return not_found(web)
    return _public(
        request,
        version.html.encode("utf-8"),
        media_type="text/html",
        max_age=EDITION_MAX_AGE,
        headers=mail_document_policy(
            allowed_image_origins(version.image_origins, image_hosts(web.settings)),
            framed_by_self=False,
        ),
    )
