"""Adding one person as staff, and the people mail no longer reaches (bounced, complained).

Adding follows the CLI's `newsletter subscribers add`: by default the person gets a
confirmation mail; "confirmed" needs a reason (a paper list, an action day) and is
refused for a suppressed address, which only its own opt-in brings back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import InvalidInput, SubscriberError, SuppressedAddress
from newsletter.web.admin.context import Admin, AdminContext, Staff
from newsletter.web.admin.person import back_to, staff_requester
from subscribers.management import ListManagement

router = APIRouter(prefix="/admin")

HOW = ("mail", "confirmed")
# What adding reported, as the person's page says it (its `done` codes).
DONE = {
    "confirmed": "added_confirmed",
    "pending": "added_pending",
    "already_confirmed": "already_confirmed",
    "mail_limit_reached": "mail_limit",
}


@dataclass(frozen=True)
class Typed:
    """What staff typed in the add form, to show it again with what is wrong."""

    email: str = ""
    name: str = ""
    themes: tuple[str, ...] = ()
    how: str = "mail"
    reason: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def add_page(admin: AdminContext, request: Request, typed: Typed, *, status: int = 200) -> Response:
    return admin.page("subscriber_new.html.j2", request, typed=typed, status=status)


@router.get("/subscribers/new")
def new_person(request: Request, admin: Admin) -> Response:
    return add_page(admin, request, Typed())


@router.post("/subscribers/new")
async def add_person(request: Request, admin: Admin, member: Staff) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    how = form.first("how")
    typed = Typed(
        email=form.first("email"),
        name=form.first("name"),
        themes=tuple(dict.fromkeys(form.all("themes"))),
        how=how if how in HOW else "mail",
        reason=form.first("reason"),
    )
    people = admin.people
    try:
        outcome = people.add_one(
            typed.email,
            name=typed.name or None,
            themes=typed.themes,
            requester=staff_requester(member),
            confirmed=typed.how == "confirmed",
            consent_note=typed.reason if typed.how == "confirmed" else None,
        )
    except InvalidInput as exc:
        return add_page(admin, request, _with_errors(typed, exc.problems), status=422)
    except SuppressedAddress:
        return add_page(admin, request, _with_errors(typed, {"email": "suppressed"}), status=409)
    public_id = _public_id(people, typed.email)
    if public_id is None:  # a pending sign-up purged meanwhile: nothing to show
        return admin.see_other("/admin/subscribers")
    return back_to(public_id, DONE[outcome.result], admin=admin, mails=outcome.mails)


def _with_errors(typed: Typed, problems: dict[str, str]) -> Typed:
    return Typed(typed.email, typed.name, typed.themes, typed.how, typed.reason, dict(problems))


def _public_id(people: ListManagement, email: str) -> str | None:
    try:
        record = people.show(email)
    except SubscriberError:
        return None
    return record.subscriber.public_id if record.subscriber is not None else None


@router.get("/subscribers/returned")
def returned_people(request: Request, admin: Admin) -> Response:
    """Who mail no longer reaches, why and since when; each with a way to try again."""
    return admin.page("subscribers_returned.html.j2", request, people=admin.people.returned())
