"""Reading submitted HTML forms: bounded parsing, and the fields of the sign-up form."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from newsletter.web.csrf import FIELD_NAME as CSRF_FIELD

# A field people never see (hidden by CSS, aria-hidden, out of the tab order); only
# robots that fill in every field fill it in.
HONEYPOT_FIELD = "opmerking"
# No form of ours has more fields than this (the themes are one field each).
MAX_FIELDS = 60


@dataclass(frozen=True)
class FormFields:
    """The text fields of a submitted form; files and unknown encodings give no fields."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def first(self, name: str) -> str:
        found = self.values.get(name)
        return found[0] if found else ""

    def all(self, name: str) -> list[str]:
        return list(self.values.get(name, []))

    @property
    def csrf_token(self) -> str | None:
        """The submitted CSRF token; None unless there is exactly one, as our forms send."""
        found = self.values.get(CSRF_FIELD, [])
        return found[0] if len(found) == 1 else None


async def read_form(request: Request) -> FormFields | None:
    """The form in the request body, or None when it cannot be read as one."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except HTTPException:
        # Starlette's answer to a malformed multipart body or too many fields.
        return None
    values: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            return None
        values.setdefault(name, []).append(value)
    return FormFields(values)


@dataclass(frozen=True)
class SignupFields:
    """What a person typed into the sign-up form, to show it again with any errors."""

    email: str = ""
    name: str = ""
    themes: tuple[str, ...] = ()

    @classmethod
    def from_form(cls, form: FormFields) -> SignupFields:
        return cls(
            email=form.first("email"),
            name=form.first("name"),
            themes=tuple(dict.fromkeys(form.all("themes"))),
        )

    @property
    def name_or_none(self) -> str | None:
        return self.name if self.name.strip() else None
