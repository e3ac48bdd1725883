"""Draft review: see an edition as readers will, change it, test it, approve and send it.

The review page shows the mail in two frames (desktop and phone width) and its text
version. While the edition is open (draft or approved) staff can change the subject
and the introduction, take articles out and change their order; every change takes
an approval back (editions/changes.py). Approving starts the send in the background;
the progress page shows it from the outbox each time staff press Ververs (no self-refresh).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.core.errors import CompositionError, EditionError, NewsletterError
from newsletter.delivery.copies import send_test
from newsletter.editions.lifecycle import is_row_id
from newsletter.staff.accounts import StaffMember
from newsletter.staff.review import Preview, allowed_test_addresses, article_action
from newsletter.web.admin.context import Admin, AdminContext, Staff
from newsletter.web.security import mail_document_policy
from subscribers.addresses import normalize_address

# Codes a change may report back on the review page (?done=...); words in the template.
DONE_CODES = (
    "saved",
    "removed",
    "moved",
    "test_sent",
    "approved",
    "planned",
    "plan_cancelled",
    "item_added",
    "item_removed",
)

router = APIRouter(prefix="/admin")


def edition_number(number: int) -> int:
    """The edition number in the path; 404 when no row could have it (2**63 overflows
    SQLite's integers, which would otherwise end in a 500)."""
    if not is_row_id(number):
        raise HTTPException(status_code=404)
    return number


def article_number(article_id: int) -> int:
    """The article id in the path; 404 when no row could have it."""
    if not is_row_id(article_id):
        raise HTTPException(status_code=404)
    return article_id


Number = Annotated[int, Depends(edition_number)]
ArticleId = Annotated[int, Depends(article_number)]


@dataclass(frozen=True)
class Outcome:
    """What the review page reports of the last request: a change done (a DONE_CODES
    code), refused (`error`), or not confirmed (`problem`); and the text staff typed, to
    show it again when it was refused."""

    done: str | None = None
    error: str | None = None
    problem: str | None = None
    status: int = 200
    typed_subject: str | None = None
    typed_intro: str | None = None
    typed_address: str | None = None


async def review_page(
    request: Request, admin: AdminContext, member: StaffMember, number: int, outcome: Outcome
) -> Response:
    """The review page of edition `number`, with what a change reported or refused."""
    try:
        review = await run_in_threadpool(admin.review.load, number)
    except EditionError:
        return admin.not_found()
    preview: Preview | None = None
    if review.has_mail:
        preview = await run_in_threadpool(admin.review.preview, number)
    recipients = await run_in_threadpool(admin.review.recipients, review)
    return admin.page(
        "edition.html.j2",
        request,
        status=outcome.status,
        review=review,
        text_version=preview.text if preview else None,
        recipients=recipients,
        test_addresses=allowed_test_addresses(member, admin.web.settings.schedule.staff),
        done=outcome.done if outcome.done in DONE_CODES else None,
        error=outcome.error,
        problem=outcome.problem,
        typed_address=outcome.typed_address,
        form_subject=review.subject if outcome.typed_subject is None else outcome.typed_subject,
        form_intro=review.intro_markdown if outcome.typed_intro is None else outcome.typed_intro,
        send_state=admin.sends.state(number),
    )


def back(admin: AdminContext, number: int, done: str, anchor: str = "") -> Response:
    """To the review page, with what was done and, after an article change, where it was."""
    return admin.see_other(f"/admin/editions/{number}?done={done}{anchor}")


def article_anchor(article_ids: list[int], article_id: int, action: str) -> str:
    """Where staff were after changing an article: the article itself, or once it is
    taken out, the one that took its place (the one before, when it was the last)."""
    if action != "remove":
        return f"#artikel-{article_id}"
    if article_id not in article_ids:
        return "#articles"
    rest = [other for other in article_ids if other != article_id]
    place = min(article_ids.index(article_id), len(rest) - 1)
    return f"#artikel-{rest[place]}" if rest else "#articles"


def refused_test_address(address: str, allowed: list[str]) -> str | None:
    """Why a test copy may not go to `address` (a problem code), or None."""
    if not address.strip():
        return "test_address_missing"
    try:
        normalize_address(address)
    except NewsletterError:
        return "test_address_invalid"
    # Only the staff's own addresses: the form must not mail anyone else.
    return None if address in allowed else "test_address_not_staff"


@router.get("/editions/{number}")
async def show_edition(
    request: Request, admin: Admin, member: Staff, number: Number, done: str | None = None
) -> Response:
    return await review_page(request, admin, member, number, Outcome(done=done))


@router.get("/editions/{number}/preview.html")
async def show_preview(admin: Admin, number: Number) -> Response:
    try:
        preview = await run_in_threadpool(admin.review.preview, number)
    except (EditionError, CompositionError):
        # No such edition, or one without articles (a forced draft): nothing to show.
        return admin.not_found()
    return HTMLResponse(
        preview.html,
        headers=mail_document_policy(preview.image_origins, framed_by_self=True),
    )


@router.post("/editions/{number}/text")
async def change_text(request: Request, admin: Admin, member: Staff, number: Number) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    subject, intro = form.first("subject"), form.first("intro")
    try:
        await run_in_threadpool(
            admin.review.edit_text, number, subject=subject, intro_markdown=intro
        )
    except NewsletterError as exc:
        refused = Outcome(error=str(exc), status=409, typed_subject=subject, typed_intro=intro)
        return await review_page(request, admin, member, number, refused)
    return back(admin, number, "saved")


@router.post("/editions/{number}/articles/{article_id}")
async def change_article(
    request: Request, admin: Admin, member: Staff, number: Number, article_id: ArticleId
) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    action = article_action(form.first("action"))
    if action is None:
        return admin.web.pages.problem("bad_request", status=400, staff=True)
    try:
        before = await run_in_threadpool(admin.review.load, number)
        await run_in_threadpool(admin.review.change_article, number, article_id, action)
    except NewsletterError as exc:
        return await review_page(
            request, admin, member, number, Outcome(error=str(exc), status=409)
        )
    anchor = article_anchor([article.id for article in before.articles], article_id, action)
    return back(admin, number, "removed" if action == "remove" else "moved", anchor)


@router.post("/editions/{number}/test")
async def send_test_copy(request: Request, admin: Admin, member: Staff, number: Number) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    web = admin.web
    address = form.first("address")
    allowed = allowed_test_addresses(member, web.settings.schedule.staff)
    problem = refused_test_address(address, allowed)
    if problem is not None:
        refused = Outcome(problem=problem, status=400, typed_address=address)
        return await review_page(request, admin, member, number, refused)
    try:
        await run_in_threadpool(
            send_test, web.settings, web.database, number, [address], clock=web.clock
        )
    except NewsletterError as exc:
        return await review_page(
            request, admin, member, number, Outcome(error=str(exc), status=502)
        )
    return back(admin, number, "test_sent")


def _approve_and_start(admin: AdminContext, number: int) -> None:
    admin.review.approve(number)
    admin.sends.start(number)


@router.post("/editions/{number}/send")
async def approve_and_send(
    request: Request, admin: Admin, member: Staff, number: Number
) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    if form.first("confirm") != "yes":
        return await review_page(
            request, admin, member, number, Outcome(problem="confirm", status=400)
        )
    try:
        await run_in_threadpool(_approve_and_start, admin, number)
    except NewsletterError as exc:
        return await review_page(
            request, admin, member, number, Outcome(error=str(exc), status=409)
        )
    return admin.see_other(f"/admin/editions/{number}/progress")


@router.get("/editions/{number}/progress")
async def progress(request: Request, admin: Admin, number: Number) -> Response:
    try:
        review = await run_in_threadpool(admin.review.load, number)
    except EditionError:
        return admin.not_found()
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
