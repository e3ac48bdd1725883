"""A one-off announcement ("Nieuwe mededeling"): the form, and the draft it makes.

Once written, the announcement is an edition like any other: the route leads to its
review page, for the test copy, the approval and the send. A refusal shows the form
again with what was typed and one Dutch line (codes, words in the template).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import NewsletterError
from newsletter.editions.announcements import AnnouncementError
from newsletter.staff.announcements import Announcements
from newsletter.web.admin.context import Admin, AdminContext

router = APIRouter(prefix="/admin")


def announcements(admin: AdminContext) -> Announcements:
    return Announcements(admin.web.database, clock=admin.web.clock)


async def form_page(
    request: Request,
    admin: AdminContext,
    *,
    status: int = 200,
    problem: str | None = None,
    subject: str = "",
    body: str = "",
    chosen: tuple[str, ...] = (),
) -> Response:
    choices = await run_in_threadpool(announcements(admin).choices)
    return admin.page(
        "announcement.html.j2",
        request,
        status=status,
        problem=problem,
        choices=choices,
        form_subject=subject,
        form_body=body,
        chosen=chosen,
    )


@router.get("/announcements/new")
async def new_announcement(request: Request, admin: Admin) -> Response:
    return await form_page(request, admin)


@router.post("/announcements/new")
async def write_announcement(request: Request, admin: Admin) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    subject, body, chosen = form.first("subject"), form.first("body"), tuple(form.all("article"))

    async def again(status: int, problem: str) -> Response:
        return await form_page(
            request,
            admin,
            status=status,
            problem=problem,
            subject=subject,
            body=body,
            chosen=chosen,
        )

    if not all(value.isdigit() and len(value) < 19 for value in chosen):
        return await again(400, "articles")
    writer = announcements(admin)
    try:
        number = await run_in_threadpool(
            lambda: writer.write(
                subject=subject, body_markdown=body, article_ids=[int(value) for value in chosen]
            )
        )
    except AnnouncementError as exc:
        return await again(400, exc.reason)
    except NewsletterError:
        return await again(409, "other")
    return admin.see_other(f"/admin/editions/{number}")
