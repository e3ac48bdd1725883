"""Planned sends on the review page: approve without sending, plan a moment, cancel it.

The logic is in staff/plans.py; these routes read the form, call it, and lead back to
the review page, which says in Dutch what was done or refused (codes, words in the
template).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import NewsletterError
from newsletter.editions.planning import PlanError
from newsletter.staff.plans import EditionPlans
from newsletter.web.admin.context import Admin, AdminContext, Staff
from newsletter.web.admin.editions import Number, Outcome, back, review_page

router = APIRouter(prefix="/admin")


def edition_plans(admin: AdminContext) -> EditionPlans:
    web = admin.web
    return EditionPlans(web.settings, web.database, clock=web.clock)


def refused(exc: NewsletterError) -> Outcome:
    """A refusal as the review page reports it: a plan's reason in Dutch, else the error."""
    if isinstance(exc, PlanError):
        status = 409 if exc.reason == "not_approved" else 400
        return Outcome(problem=f"plan_{exc.reason}", status=status)
    return Outcome(error=str(exc), status=409)


@router.post("/editions/{number}/approve")
async def approve_only(request: Request, admin: Admin, member: Staff, number: Number) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    try:
        await run_in_threadpool(edition_plans(admin).approve, number)
    except NewsletterError as exc:
        return await review_page(request, admin, member, number, refused(exc))
    return back(admin, number, "approved")


@router.post("/editions/{number}/plan")
async def plan_send(request: Request, admin: Admin, member: Staff, number: Number) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    plans = edition_plans(admin)
    day, time_of_day = form.first("day"), form.first("time")
    try:
        await run_in_threadpool(
            lambda: plans.plan(number, day=day, time_of_day=time_of_day, planned_by=member.name)
        )
    except NewsletterError as exc:
        return await review_page(request, admin, member, number, refused(exc))
    return back(admin, number, "planned")


@router.post("/editions/{number}/plan/cancel")
async def cancel_plan(request: Request, admin: Admin, member: Staff, number: Number) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    try:
        await run_in_threadpool(edition_plans(admin).cancel, number)
    except NewsletterError as exc:
        return await review_page(request, admin, member, number, refused(exc))
    return back(admin, number, "plan_cancelled")
