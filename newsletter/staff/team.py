"""The admin's staff page: who has an account, open invitations, who logged in when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from newsletter.core.db import Database
from newsletter.core.errors import AccountError
from newsletter.staff.accounts import (
    StaffMember,
    has_password,
    list_users,
    login_history,
    remove_user,
)
from newsletter.staff.invitations import open_invitations


@dataclass(frozen=True)
class Colleague:
    name: str
    email: str | None
    role: str
    last_login_at: datetime | None
    # False until an invited colleague set their password; then `link_until` says
    # until when their link works (None: it expired, send a new one).
    has_password: bool
    link_until: datetime | None


@dataclass(frozen=True)
class LoginLine:
    at: datetime
    name: str | None  # None: a name that is not a staff account
    succeeded: bool


@dataclass(frozen=True)
class Team:
    colleagues: list[Colleague]
    logins: list[LoginLine]


def load_team(database: Database, *, now: datetime, logins: int = 50) -> Team:
    with database.session() as session:
        links = open_invitations(session, now=now)
        colleagues = [
            Colleague(
                name=user.name,
                email=user.email,
                role=user.role,
                last_login_at=user.last_login_at,
                has_password=has_password(user),
                link_until=links.get(user.id),
            )
            for user in list_users(session)
        ]
        history = [
            LoginLine(at=row.at, name=row.name, succeeded=row.succeeded)
            for row in login_history(session, limit=logins)
        ]
    return Team(colleagues, history)


def remove_colleague(database: Database, name: str, *, by: StaffMember) -> None:
    """Remove `name`'s account and sessions; nobody removes their own (so an admin stays)."""
    if name == by.name:
        raise AccountError("you cannot remove your own account")
    with database.session() as session:
        remove_user(session, name)
