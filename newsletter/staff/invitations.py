"""Inviting a colleague: an account without a password, and a one-time link to set one.

An admin adds a colleague by name, address and role; the colleague gets a mail with a
link that works once, for INVITATION_HOURS. The database keeps only the SHA-256 of the
link's token, and deletes it when it is used, replaced by a newer link, or expired. Until
the colleague sets a password nobody can log in as them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import AccountError
from newsletter.core.templating import render_template, template_environment
from newsletter.core.text import one_line
from newsletter.mail.mailer import OutgoingMail
from newsletter.staff.accounts import (
    StaffInvitation,
    StaffMember,
    StaffSession,
    StaffUser,
    add_user,
    check_password,
    has_password,
    set_password,
)

INVITATION_HOURS = 48
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Invitation:
    """A new link for `member`: the token goes in the mail, never in the database."""

    member: StaffMember
    token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invite(session: Session, name: str, *, email: str, role: str, now: datetime) -> Invitation:
    """A new account `name` without a password, and its first link."""
    member = add_user(session, name, None, email=email, now=now, role=role)
    return new_link(session, member.name, now=now)


def new_link(session: Session, name: str, *, now: datetime) -> Invitation:
    """A fresh link for `name` (an older one stops working); not for someone with a password."""
    user = session.scalar(select(StaffUser).where(StaffUser.name == name))
    if user is None:
        raise AccountError(f"there is no staff user {name!r}")
    if has_password(user):
        raise AccountError(f"{name} has a password already")
    if not user.email:
        raise AccountError(f"{name} has no address to send a link to")
    session.execute(delete(StaffInvitation).where(StaffInvitation.user_id == user.id))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + timedelta(hours=INVITATION_HOURS)
    session.add(
        StaffInvitation(
            token_hash=_digest(token), user_id=user.id, created_at=now, expires_at=expires_at
        )
    )
    member = StaffMember(id=user.id, name=user.name, email=user.email, role=user.role)
    return Invitation(member=member, token=token, expires_at=expires_at)


def invited_user(session: Session, token: str, *, now: datetime) -> StaffUser | None:
    """Whose live link `token` is, or None (unknown, used, replaced or expired)."""
    if not token or len(token) > 100:
        return None
    row = session.get(StaffInvitation, _digest(token))
    if row is None:
        return None
    if row.expires_at <= now:
        session.delete(row)
        return None
    return session.get(StaffUser, row.user_id)


def accept(session: Session, token: str, password: str, *, now: datetime) -> StaffMember:
    """Set the password of the link's owner and spend the link; AccountError when the
    link does not work (any more) or the password is unusable."""
    check_password(password)
    user = invited_user(session, token, now=now)
    if user is None:
        raise AccountError("this link does not work (any more)")
    set_password(session, user.name, password)
    session.execute(delete(StaffInvitation).where(StaffInvitation.user_id == user.id))
    session.execute(delete(StaffSession).where(StaffSession.user_id == user.id))
    return StaffMember(id=user.id, name=user.name, email=user.email, role=user.role)


def open_invitations(session: Session, *, now: datetime) -> dict[int, datetime]:
    """Per user id, until when their live link works."""
    rows = session.scalars(select(StaffInvitation).where(StaffInvitation.expires_at > now))
    return {row.user_id: row.expires_at for row in rows}


def invitation_url(settings: Settings, token: str) -> str:
    return f"{settings.site.base_url}/admin/welcome/{token}"


def invitation_mail(settings: Settings, invitation: Invitation, *, invited_by: str) -> OutgoingMail:
    """The mail with the link, to the colleague's own address."""
    assert invitation.member.email is not None
    environment = template_environment(settings)
    context = {
        "site": settings.site,
        "name": invitation.member.name,
        "invited_by": invited_by,
        "url": invitation_url(settings, invitation.token),
        "hours": INVITATION_HOURS,
    }
    subject = render_template(environment, "email/staff_invitation.subject.txt.j2", context)
    text = render_template(environment, "email/staff_invitation.txt.j2", context)
    return OutgoingMail(
        to=invitation.member.email, subject=one_line(subject), text=text, kind="staff"
    )


def invite_and_mail(
    database: Database,
    settings: Settings,
    send: Callable[[OutgoingMail], None],
    name: str,
    *,
    email: str | None,
    role: str,
    invited_by: str,
    now: datetime,
) -> Invitation:
    """`invite` (or, with `email` None, a new link for `name`) committed, then mailed.

    The account stays when the mail fails (DeliveryError): a new link can be sent later.
    """
    with database.session() as session:
        if email is None:
            invitation = new_link(session, name, now=now)
        else:
            invitation = invite(session, name, email=email, role=role, now=now)
    send(invitation_mail(settings, invitation, invited_by=invited_by))
    return invitation
