"""Hand-written items on the review page: add one (title, link, short text), remove one.

The logic is in staff/items.py and editions/items.py; a refusal comes back on the review
page as one Dutch line (codes, words in the template), and nothing is stored.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import NewsletterError
from newsletter.editions.items import ItemError
from newsletter.staff.items import EditionItems
from newsletter.web.admin.context import Admin, AdminContext, Staff
from newsletter.web.admin.editions import ArticleId, Number, Outcome, back, review_page

router = APIRouter(prefix="/admin")


def edition_items(admin: AdminContext) -> EditionItems:
    return EditionItems(admin.web.database, clock=admin.web.clock)


def refused(exc: NewsletterError) -> Outcome:
    if isinstance(exc, ItemError):
        status = 404 if exc.reason == "unknown" else 400
        return Outcome(problem=f"item_{exc.reason}", status=status)
    return Outcome(error=str(exc), status=409)


@router.post("/editions/{number}/items")
async def add_item(request: Request, admin: Admin, member: Staff, number: Number) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    title, link, text = form.first("title"), form.first("link"), form.first("text")
    adder = edition_items(admin)
    try:
        await run_in_threadpool(lambda: adder.add(number, title=title, link=link, text=text))
    except NewsletterError as exc:
        return await review_page(request, admin, member, number, refused(exc))
    return back(admin, number, "item_added")


@router.post("/editions/{number}/items/{article_id}/remove")
async def remove_item(
    request: Request, admin: Admin, member: Staff, number: Number, article_id: ArticleId
) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    try:
        await run_in_threadpool(edition_items(admin).remove, number, article_id)
    except NewsletterError as exc:
        return await review_page(request, admin, member, number, refused(exc))
    return back(admin, number, "item_removed")
