"""CSRF protection for the HTML forms: a double-submit token in a cookie and a hidden field.

Every page with a form carries a random token twice: in the `csrf` cookie (HttpOnly,
SameSite=Strict, Path=/, Secure on an https site, where it is named `__Host-csrf` so
that no subdomain can plant one) and in the form's hidden field. A POST is accepted only
when both are present and equal (compared in constant time). Another site can make a
browser post a form, but it can neither read nor set our cookie, so it cannot supply the
matching field. The cookie is the only one the site ever sets; it lives for the browser
session and means nothing beyond that.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

FIELD_NAME = "csrf_token"
PLAIN_COOKIE_NAME = "csrf"
SECURE_COOKIE_NAME = "__Host-csrf"
TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def looks_like_token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN_SHAPE.fullmatch(value) is not None


@dataclass(frozen=True)
class CsrfGuard:
    """Issues tokens for pages with forms and checks them on the POSTs."""

    secure: bool

    @property
    def cookie_name(self) -> str:
        return SECURE_COOKIE_NAME if self.secure else PLAIN_COOKIE_NAME

    def token_for(self, request: Request) -> tuple[str, bool]:
        """The token for a page with a form, and whether the cookie must be (re)set."""
        current = request.cookies.get(self.cookie_name)
        if looks_like_token(current):
            assert current is not None
            return current, False
        return new_token(), True

    def set_cookie(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.cookie_name,
            token,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def is_valid(self, request: Request, submitted: str | None) -> bool:
        """True when the cookie and the submitted field hold the same well-formed token."""
        cookie = request.cookies.get(self.cookie_name)
        if not looks_like_token(cookie) or not looks_like_token(submitted):
            return False
        assert isinstance(cookie, str) and isinstance(submitted, str)
        return hmac.compare_digest(cookie.encode("ascii"), submitted.encode("ascii"))
