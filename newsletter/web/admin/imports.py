"""Importing a CSV file as staff: upload, a preview of what will happen, then import.

Nothing is stored until "Importeren": the preview carries the file's text, signed and
time-stamped (newsletter/staff/imports.py), and the import reads it afresh. A file that
cannot be read at all gets one Dutch line and its status (400, or 413 when too large).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.errors import ImportFileError, InvalidInput
from newsletter.staff.imports import MAX_IMPORT_BYTES, seal_file, unseal_file
from newsletter.web.admin.context import Admin, AdminContext, Staff
from newsletter.web.admin.person import staff_requester
from newsletter.web.csrf import FIELD_NAME as CSRF_FIELD
from subscribers.importing import decode_file

router = APIRouter(prefix="/admin")

# The note in the consent log of people imported with a confirmation mail.
MAIL_NOTE = "import uit een CSV-bestand"


def upload_page(
    admin: AdminContext, request: Request, *, problem: str | None = None, status: int = 200
) -> Response:
    """The upload form; `problem` is an ImportFileError code, "not_a_file" or "expired"."""
    return admin.page(
        "subscribers_import.html.j2",
        request,
        problem=problem,
        status=status,
    )


def preview_page(
    admin: AdminContext,
    request: Request,
    text: str,
    *,
    how: str = "mail",
    reason: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    try:
        preview = admin.people.preview_import(text)
    except ImportFileError as exc:
        return upload_page(admin, request, problem=exc.code, status=400)
    web = admin.web
    sealed = seal_file(text, secret=web.settings.require_secret_key(), now=web.clock())
    return admin.page(
        "subscribers_import_preview.html.j2",
        request,
        preview=preview,
        sealed=sealed,
        how=how,
        reason=reason,
        errors=errors or {},
        status=status,
    )


@router.get("/subscribers/import")
def show_upload(request: Request, admin: Admin) -> Response:
    return upload_page(admin, request)


@router.post("/subscribers/import")
async def preview_upload(request: Request, admin: Admin) -> Response:
    try:
        raw = await uploaded_file(request, admin)
    except HTTPException:
        return upload_page(admin, request, problem="not_a_file", status=400)
    if isinstance(raw, Response):
        return raw
    if raw is None:
        return upload_page(admin, request, problem="not_a_file", status=400)
    if len(raw) > MAX_IMPORT_BYTES:
        return upload_page(admin, request, problem="too_large", status=413)
    try:
        text = decode_file(raw)
    except ImportFileError as exc:
        return upload_page(admin, request, problem=exc.code, status=400)
    return preview_page(admin, request, text)


async def uploaded_file(request: Request, admin: AdminContext) -> bytes | Response | None:
    """The uploaded file's bytes (one more than the limit at most); the 403 page for a
    wrong CSRF token; None without a file. The form's temporary file is closed after."""
    async with request.form(max_files=1, max_fields=5, max_part_size=MAX_IMPORT_BYTES) as form:
        token = form.get(CSRF_FIELD)
        if not isinstance(token, str) or not admin.web.csrf.is_valid(request, token):
            return admin.web.pages.problem("csrf", status=403, staff=True)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return None
        return await upload.read(MAX_IMPORT_BYTES + 1)


@router.post("/subscribers/import/confirm")
async def import_file(request: Request, admin: Admin, member: Staff) -> Response:
    form = await admin.web.checked_form(request)
    if isinstance(form, Response):
        return form
    web = admin.web
    text = unseal_file(
        form.first("file"), secret=web.settings.require_secret_key(), now=web.clock()
    )
    if text is None:
        return upload_page(admin, request, problem="expired", status=400)
    confirmed = form.first("how") == "confirmed"
    reason = form.first("reason")
    try:
        report = admin.people.import_previewed(
            text,
            requester=staff_requester(member),
            confirmed=confirmed,
            consent_note=reason if confirmed else MAIL_NOTE,
        )
    except InvalidInput as exc:
        how = "confirmed" if confirmed else "mail"
        return preview_page(
            admin, request, text, how=how, reason=reason, errors=exc.problems, status=422
        )
    except ImportFileError as exc:
        return upload_page(admin, request, problem=exc.code, status=400)
    response = admin.page("subscribers_import_done.html.j2", request, report=report)
    response.background = web.deliver_later(report.mails)
    return response
