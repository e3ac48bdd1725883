"""Staff sessions in the browser: the session cookie, and who a request comes from.

The cookie holds a random token (the database keeps its hash, see staff/accounts.py). It is
HttpOnly, SameSite=Lax (a link from a review mail opens the page logged in; a form
posted from another site arrives without it) and Secure on an https site, where it is
named `__Host-staff` so that no subdomain can plant one. Forms under /admin carry the
CSRF token as every form of the site does (web/csrf.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.clock import Clock
from newsletter.core.db import Database
from newsletter.staff.accounts import StaffMember, close_session, open_session, session_member

PLAIN_COOKIE_NAME = "staff"
SECURE_COOKIE_NAME = "__Host-staff"


class LoginRequired(Exception):
    """A request under /admin without a live session; the app answers 303 or 401."""


@dataclass(frozen=True)
class StaffSessions:
    database: Database
    clock: Clock
    idle: timedelta
    lifetime: timedelta
    secure: bool

    @property
    def cookie_name(self) -> str:
        return SECURE_COOKIE_NAME if self.secure else PLAIN_COOKIE_NAME

    def member(self, request: Request) -> StaffMember | None:
        """The staff member whose live session the request's cookie holds."""
        token = request.cookies.get(self.cookie_name)
        if not token:
            return None
        with self.database.session() as session:
            return session_member(
                session, token, now=self.clock(), idle=self.idle, lifetime=self.lifetime
            )

    def start(self, response: Response, member: StaffMember) -> None:
        """Log `member` in: a new session (never one a visitor brought along)."""
        with self.database.session() as session:
            token = open_session(session, member, now=self.clock())
        response.set_cookie(
            self.cookie_name,
            token,
            max_age=int(self.lifetime.total_seconds()),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def end(self, request: Request, response: Response) -> None:
        token = request.cookies.get(self.cookie_name)
        if token:
            with self.database.session() as session:
                close_session(session, token)
        response.delete_cookie(
            self.cookie_name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )
