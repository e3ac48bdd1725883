"""Draft review: see an edition as readers will, change it, test it, approve and send it.

The review page shows the mail in two frames (desktop and phone width) and its text
version. While the edition is open (draft or approved) staff can change the subject
and the introduction, take articles out and change their order; every change takes
an approval back (drafts.py). Approving starts the send in the background; the
progress page follows it in the outbox and refreshes itself until it is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.core.caching import LruCache
from newsletter.core.errors import CompositionError, EditionError, NewsletterError
from newsletter.core.templating import template_environment
from newsletter.delivery.copies import send_test
from newsletter.delivery.outbox import StateCounts, state_counts
from newsletter.delivery.send import recipient_count
from newsletter.editions import changes as drafts
from newsletter.editions.archive import image_origins
from newsletter.editions.lifecycle import OPEN_STATES, get_edition
from newsletter.editions.models import Edition
from newsletter.editions.preview import edition_content, render_preview
from newsletter.staff.accounts import StaffMember
from newsletter.web.admin.context import AdminContext
from newsletter.web.security import mail_document_policy

# Codes a change may report back on the review page (?done=...); words in the template.
DONE_CODES = ("saved", "removed", "moved", "test_sent")
PREVIEW_CACHE_SIZE = 8


@dataclass(frozen=True)
class ArticleLine:
    id: int
    title: str
    link: str | None
    published_at: datetime | None


@dataclass(frozen=True)
class Review:
    """What the review page shows of one edition."""

    number: int
    state: str
    subject: str
    intro_markdown: str
    updated_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    articles: list[ArticleLine]
    deliveries: StateCounts

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class Preview:
    html: str
    text: str
    image_origins: tuple[str, ...]


def test_addresses(member: StaffMember, staff_list: list[str]) -> list[str]:
    """Where this staff member may send a test: their own address, then the staff list."""
    found = [member.email] if member.email else []
    return list(dict.fromkeys([*found, *staff_list]))


def build_editions_router(admin: AdminContext) -> APIRouter:
    router = APIRouter(prefix="/admin")
    web = admin.web
    settings = web.settings
    environment = template_environment(settings)
    previews: LruCache[tuple[int, datetime], Preview] = LruCache(PREVIEW_CACHE_SIZE)

    def load_review(number: int) -> Review:
        with web.database.session() as session:
            edition = get_edition(session, number)
            return Review(
                number=edition.id,
                state=edition.state,
                subject=edition.subject,
                intro_markdown=edition.intro_markdown,
                updated_at=edition.updated_at,
                approved_at=edition.approved_at,
                sent_at=edition.sent_at,
                articles=[
                    ArticleLine(
                        id=entry.article.id,
                        title=entry.article.title,
                        link=entry.article.link,
                        published_at=entry.article.published_at,
                    )
                    for entry in edition.entries
                ],
                deliveries=state_counts(session, edition.id),
            )

    def load_preview(number: int) -> Preview:
        with web.database.session() as session:
            stamp = session.scalar(select(Edition.updated_at).where(Edition.id == number))
            if stamp is None:
                raise EditionError(f"there is no edition {number}")
            key = (number, stamp)
            cached = previews.get(key)
            if cached is not None:
                return cached
            content = edition_content(get_edition(session, number))
        html_document, text_document = render_preview(content, settings, environment=environment)
        preview = Preview(html_document, text_document, image_origins(html_document))
        previews.put(key, preview)
        return preview

    async def review_page(
        request: Request,
        number: int,
        *,
        done: str | None = None,
        error: str | None = None,
        problem: str | None = None,
        status: int = 200,
        form_subject: str | None = None,
        form_intro: str | None = None,
    ) -> Response:
        try:
            review = await run_in_threadpool(load_review, number)
        except EditionError:
            return not_found()
        preview: Preview | None = None
        if review.articles:
            preview = await run_in_threadpool(load_preview, number)
        recipients = (
            await run_in_threadpool(recipient_count, web.database, number)
            if review.is_open
            else review.deliveries.total
        )
        member = admin.member(request)
        return admin.page(
            "edition.html.j2",
            request,
            status=status,
            review=review,
            text_version=preview.text if preview else None,
            recipients=recipients,
            test_addresses=test_addresses(member, list(settings.schedule.staff)),
            done=done if done in DONE_CODES else None,
            error=error,
            problem=problem,
            form_subject=review.subject if form_subject is None else form_subject,
            form_intro=review.intro_markdown if form_intro is None else form_intro,
            send_state=admin.sends.state(number),
        )

    def not_found() -> Response:
        return web.pages.problem("not_found", status=404)

    def back(number: int, done: str) -> Response:
        return admin.see_other(f"/admin/editions/{number}?done={done}")

    @router.get("/editions/{number}")
    async def show_edition(request: Request, number: int, done: str | None = None) -> Response:
        return await review_page(request, number, done=done)

    @router.get("/editions/{number}/preview.html")
    async def show_preview(number: int) -> Response:
        try:
            preview = await run_in_threadpool(load_preview, number)
        except (EditionError, CompositionError):
            # No such edition, or one without articles (a forced draft): nothing to show.
            return not_found()
        return HTMLResponse(
            preview.html,
            headers=mail_document_policy(preview.image_origins, framed_by_self=True),
        )

    @router.post("/editions/{number}/text")
    async def change_text(request: Request, number: int) -> Response:
        form = await web.checked_form(request)
        if isinstance(form, Response):
            return form
        subject, intro = form.first("subject"), form.first("intro")

        def work() -> None:
            with web.database.session() as session:
                drafts.edit_text(
                    session, number, subject=subject, intro_markdown=intro, now=web.clock()
                )

        try:
            await run_in_threadpool(work)
        except NewsletterError as exc:
            return await review_page(
                request, number, error=str(exc), status=409, form_subject=subject, form_intro=intro
            )
        return back(number, "saved")

    @router.post("/editions/{number}/articles/{article_id}")
    async def change_article(request: Request, number: int, article_id: int) -> Response:
        form = await web.checked_form(request)
        if isinstance(form, Response):
            return form
        action = form.first("action")
        if action not in ("remove", "up", "down"):
            return web.pages.problem("bad_request", status=400)

        def work() -> None:
            now = web.clock()
            with web.database.session() as session:
                if action == "remove":
                    drafts.remove_article(session, number, article_id, now=now)
                else:
                    offset = -1 if action == "up" else 1
                    drafts.move_article(session, number, article_id, offset=offset, now=now)

        try:
            await run_in_threadpool(work)
        except NewsletterError as exc:
            return await review_page(request, number, error=str(exc), status=409)
        return back(number, "removed" if action == "remove" else "moved")

    @router.post("/editions/{number}/test")
    async def send_test_copy(request: Request, number: int) -> Response:
        form = await web.checked_form(request)
        if isinstance(form, Response):
            return form
        allowed = test_addresses(admin.member(request), list(settings.schedule.staff))
        address = form.first("address")
        if address not in allowed:
            # Only the staff's own addresses: the form must not mail anyone else.
            return web.pages.problem("bad_request", status=400)
        try:
            await run_in_threadpool(
                send_test, settings, web.database, number, [address], clock=web.clock
            )
        except NewsletterError as exc:
            return await review_page(request, number, error=str(exc), status=502)
        return back(number, "test_sent")

    @router.post("/editions/{number}/send")
    async def approve_and_send(request: Request, number: int) -> Response:
        form = await web.checked_form(request)
        if isinstance(form, Response):
            return form
        if form.first("confirm") != "yes":
            return await review_page(request, number, problem="confirm", status=400)

        def work() -> None:
            with web.database.session() as session:
                drafts.approve(session, number, now=web.clock())
            admin.sends.start(number)

        try:
            await run_in_threadpool(work)
        except NewsletterError as exc:
            return await review_page(request, number, error=str(exc), status=409)
        return admin.see_other(f"/admin/editions/{number}/progress")

    @router.get("/editions/{number}/progress")
    async def progress(request: Request, number: int) -> Response:
        try:
            review = await run_in_threadpool(load_review, number)
        except EditionError:
            return not_found()
        send_state = admin.sends.state(number)
        # Started here: its thread says. Started elsewhere (a terminal, the scheduler):
        # the edition stays `sending` until the last message is out.
        running = send_state.running if send_state else review.state == "sending"
        return admin.page(
            "progress.html.j2",
            request,
            review=review,
            send_state=send_state,
            running=running,
        )

    return router
