"""Staff accounts: users with argon2-hashed passwords and a role, their login sessions.

A session is a random token in the staff's cookie; the database keeps only its SHA-256,
so a copy of the database opens no session. A session ends when its staff member logs
out, after `idle` without a request, or at `lifetime` after the login, whichever comes
first. Removing a user ends their sessions (the rows cascade).

Roles: an `admin` may invite and remove staff and read the login history; an `editor`
does everything else. Every login attempt that was checked is kept in `staff_logins`
(when, which staff name, whether it worked) for LOGIN_HISTORY_DAYS; an unknown name is
kept as none at all (people type passwords into the name field), and no address is.

Logging in costs the same whether the name exists or not: an unknown name is checked
against a dummy hash, so the time of an answer does not tell which names are staff.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.db import Database
from newsletter.core.errors import AccountError
from newsletter.core.models import Base

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,59}")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
SESSION_TOKEN_BYTES = 32
ROLES = ("admin", "editor")
LOGIN_HISTORY_DAYS = 90
# The password hash of an invited account until its owner sets one: no password matches.
NO_PASSWORD = "!"  # noqa: S105 (a marker, not a password)

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so both answers take one argon2 verification.

    Made at the first login, not at import: hashing costs a third of a second and 64 MiB,
    which every command would pay at start (`send` included) for a login it never does.
    """
    return _hasher.hash(secrets.token_urlsafe(16))


class StaffUser(Base):
    """Someone who may log in to /admin."""

    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'editor')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="admin", server_default="admin")
    # Where this person gets test mails and the review notices (optional).
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class StaffSession(Base):
    """A logged-in browser; `token_hash` is the SHA-256 of the cookie's token."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class StaffInvitation(Base):
    """A one-time link to set a password; `token_hash` is the SHA-256 of the mailed token."""

    __tablename__ = "staff_invitations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class StaffLogin(Base):
    """One checked login attempt: when, whose name (None when unknown), and whether it worked."""

    __tablename__ = "staff_logins"
    __table_args__ = (Index("ix_staff_logins_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    name: Mapped[str | None] = mapped_column(String(60))
    succeeded: Mapped[bool]


@dataclass(frozen=True)
class StaffMember:
    """Who is logged in, as the pages see it."""

    id: int
    name: str
    email: str | None
    role: str = "editor"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def check_name(name: str) -> str:
    """`name` when it is a valid staff name (lower case letters, digits, . _ -)."""
    if NAME_PATTERN.fullmatch(name) is None:
        raise AccountError("a staff name is 1-60 lower-case letters, digits, '.', '_' or '-'")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password must be at most {MAX_PASSWORD_CHARS} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"a role is one of {', '.join(ROLES)}")
    return role


def _member(user: StaffUser) -> StaffMember:
    return StaffMember(id=user.id, name=user.name, email=user.email, role=user.role)


def add_user(
    session: Session,
    name: str,
    password: str | None,
    *,
    email: str | None,
    now: datetime,
    role: str = "admin",
) -> StaffMember:
    """Create staff user `name`; AccountError when the name is taken or unusable.

    Without a password nobody can log in as them until one is set (an invitation).
    """
    user = StaffUser(
        name=check_name(name),
        password_hash=NO_PASSWORD if password is None else _hasher.hash(check_password(password)),
        email=email,
        role=check_role(role),
        created_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise AccountError(f"staff user {name!r} already exists") from exc
    return _member(user)


def set_password(session: Session, name: str, password: str) -> None:
    """Give `name` a new password and end all of their sessions."""
    user = _user_named(session, name)
    user.password_hash = _hasher.hash(check_password(password))
    session.execute(delete(StaffSession).where(StaffSession.user_id == user.id))


def change_own_password(session: Session, member: StaffMember, current: str, new: str) -> None:
    """`member`'s new password, when `current` is their password now; ends their sessions."""
    if authenticate(session, member.name, current) is None:
        raise AccountError("the current password is not right")
    set_password(session, member.name, new)


def has_password(user: StaffUser) -> bool:
    return user.password_hash != NO_PASSWORD


def remove_user(session: Session, name: str) -> None:
    user = _user_named(session, name)
    session.execute(delete(StaffSession).where(StaffSession.user_id == user.id))
    session.delete(user)


def list_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.name)))


def _user_named(session: Session, name: str) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.name == name))
    if user is None:
        raise AccountError(f"there is no staff user {name!r}")
    return user


def authenticate(session: Session, name: str, password: str) -> StaffMember | None:
    """The staff member when `password` is theirs, else None (same cost either way)."""
    user = session.scalar(select(StaffUser).where(StaffUser.name == name[:60]))
    usable = user is not None and has_password(user)
    stored = user.password_hash if user is not None and usable else _dummy_hash()
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD_CHARS])
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not usable:  # pragma: no cover - the dummy's password is never known
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return _member(user)


def verify_login(
    database: Database, name: str, password: str, *, now: datetime | None = None
) -> StaffMember | None:
    """`authenticate` in a transaction of its own, which keeps a rehashed password.

    With `now`, the attempt goes into the login history (and history past
    LOGIN_HISTORY_DAYS is dropped).
    """
    with database.session() as session:
        member = authenticate(session, name, password)
        if now is not None:
            known = session.scalar(select(StaffUser.name).where(StaffUser.name == name[:60]))
            session.add(StaffLogin(at=now, name=known, succeeded=member is not None))
            session.execute(
                delete(StaffLogin).where(StaffLogin.at < now - timedelta(days=LOGIN_HISTORY_DAYS))
            )
        return member


def login_history(session: Session, *, limit: int = 100) -> list[StaffLogin]:
    """The newest checked login attempts, newest first."""
    return list(session.scalars(select(StaffLogin).order_by(StaffLogin.id.desc()).limit(limit)))


def count_admins(session: Session) -> int:
    return int(
        session.scalar(select(func.count(StaffUser.id)).where(StaffUser.role == "admin")) or 0
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(session: Session, member: StaffMember, *, now: datetime) -> str:
    """Start a login session for `member`; the token for their cookie."""
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    session.add(
        StaffSession(token_hash=_digest(token), user_id=member.id, created_at=now, last_seen_at=now)
    )
    user = session.get(StaffUser, member.id)
    if user is not None:
        user.last_login_at = now
    return token


def session_member(
    session: Session,
    token: str,
    *,
    now: datetime,
    idle: timedelta,
    lifetime: timedelta,
) -> StaffMember | None:
    """Who holds session `token`, or None when it is unknown or has run out.

    A live session's idle clock restarts (at most once a minute, to spare the writes).
    """
    if not token or len(token) > 100:
        return None
    row = session.get(StaffSession, _digest(token))
    if row is None:
        return None
    if now - row.last_seen_at > idle or now - row.created_at > lifetime:
        session.delete(row)
        return None
    if now - row.last_seen_at > timedelta(minutes=1):
        row.last_seen_at = now
    user = session.get(StaffUser, row.user_id)
    return _member(user) if user is not None else None


def close_session(session: Session, token: str) -> None:
    session.execute(delete(StaffSession).where(StaffSession.token_hash == _digest(token)))


def purge_sessions(session: Session, *, now: datetime, idle: timedelta, lifetime: timedelta) -> int:
    """Delete sessions that have run out; how many."""
    result = session.execute(
        delete(StaffSession).where(
            (StaffSession.last_seen_at < now - idle) | (StaffSession.created_at < now - lifetime)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
