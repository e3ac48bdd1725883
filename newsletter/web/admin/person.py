"""What staff do on one person's page: change name and themes, mail again, unsubscribe, erase.

Every action is a POST with the CSRF token, lands in the consent log with source `staff`
and the staff member's name, and leads back to the person's page with a `done` code
(words in the template). Erasing asks first, on a page that says what remains.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsletter.core.errors import InvalidInput, SubscriberError
from newsletter.mail.mailer import OutgoingMail
from newsletter.staff.accounts import StaffMember
from newsletter.web.admin.context import Admin, AdminContext, Staff
from newsletter.web.admin.people import PUBLIC_ID, person_page
from subscribers.consent import Requester

# Codes an action reports back on the person's page (?done=...); words in the template.
DONE_CODES = (
    "saved",
    "unchanged",
    "mail_sent",
    "mail_limit",
    "unsubscribed",
    "added_confirmed",
    "added_pending",
    "already_confirmed",
)
# The note in the consent log when staff send a new confirmation mail.
ASK_AGAIN_NOTE = {
    "pending": "bevestigingsmail opnieuw gestuurd door de redactie",
    "bounced": "nieuwe kans na onbestelbaar: bevestigingsmail gestuurd",
    "complained": "nieuwe kans na klacht: bevestigingsmail gestuurd",
}

router = APIRouter(prefix="/admin")


def staff_requester(member: StaffMember) -> Requester:
    """The consent log's requester for a staff member's action: the channel and the name."""
    return Requester(source="staff", staff_name=member.name)


def back_to(
    public_id: str, done: str, *, admin: AdminContext, mails: list[OutgoingMail] | None = None
) -> Response:
    """303 to the person's page with `done`; `mails` go out after the answer."""
    tasks: BackgroundTasks | None = admin.web.deliver_later(mails) if mails else None
    return RedirectResponse(
        f"/admin/subscribers/{public_id}?done={done}", status_code=303, background=tasks
    )


def email_for(admin: AdminContext, public_id: str) -> str | None:
    return admin.people.email_of(public_id) if PUBLIC_ID.fullmatch(public_id) else None


@router.post("/subscribers/{public_id}/details")
async def change_details(request: Request, admin: Admin, member: Staff, public_id: str) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    email = email_for(admin, public_id)
    if email is None:
        return admin.not_found()
    try:
        changed = admin.people.change_details(
            email,
            name=form.first("name"),
            themes=form.all("themes"),
            requester=staff_requester(member),
        )
    except InvalidInput as exc:
        return person_page(admin, request, public_id, errors=exc.problems, status=422)
    return back_to(public_id, "saved" if changed else "unchanged", admin=admin)


@router.post("/subscribers/{public_id}/confirm-again")
async def confirm_again(request: Request, admin: Admin, member: Staff, public_id: str) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    email = email_for(admin, public_id)
    person = admin.people.person(public_id) if email is not None else None
    if email is None or person is None or person.subscriber is None:
        return admin.not_found()
    status = person.subscriber.status
    if status not in ASK_AGAIN_NOTE:
        return person_page(admin, request, public_id, refused="not_again", status=409)
    mails = admin.people.ask_to_confirm_again(
        email, requester=staff_requester(member), note=ASK_AGAIN_NOTE[status]
    )
    return back_to(public_id, "mail_sent" if mails else "mail_limit", admin=admin, mails=mails)


@router.post("/subscribers/{public_id}/unsubscribe")
async def unsubscribe(request: Request, admin: Admin, member: Staff, public_id: str) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    email = email_for(admin, public_id)
    if email is None:
        return admin.not_found()
    try:
        admin.people.remove(email, staff_requester(member))
    except SubscriberError:
        return admin.not_found()
    return back_to(public_id, "unsubscribed", admin=admin)


@router.get("/subscribers/{public_id}/erase")
def ask_to_erase(request: Request, admin: Admin, public_id: str) -> Response:
    person = admin.people.person(public_id) if PUBLIC_ID.fullmatch(public_id) else None
    if person is None:
        return admin.not_found()
    return admin.page("subscriber_erase.html.j2", request, person=person, not_sure=False)


@router.post("/subscribers/{public_id}/erase")
async def erase(request: Request, admin: Admin, member: Staff, public_id: str) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    person = admin.people.person(public_id) if PUBLIC_ID.fullmatch(public_id) else None
    if person is None:
        return admin.not_found()
    if form.first("sure") != "ja":
        return admin.page(
            "subscriber_erase.html.j2", request, person=person, not_sure=True, status=422
        )
    admin.people.erase(person.email, staff_requester(member))
    return admin.see_other("/admin/subscribers?done=erased")
