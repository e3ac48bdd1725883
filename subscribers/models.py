"""The subscriber tables (see docs/subscribers.md): people, tokens, consent log, suppressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.core.models import Base

STATUSES = ("pending", "confirmed", "unsubscribed", "bounced", "complained")
# Statuses that come with a suppression entry: never mailed until a new confirmed opt-in.
SUPPRESSED_STATUSES = ("unsubscribed", "bounced", "complained")
TOKEN_PURPOSES = ("subscribe", "change_email")
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained", "erased")

# RFC 5321 caps a forward path at 256 octets including the angle brackets.
EMAIL_MAX_CHARS = 254
NAME_MAX_CHARS = 100
USER_AGENT_MAX_CHARS = 300


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Subscriber(Base):
    """One address on the list, in one of STATUSES; `themes` empty means every theme."""

    __tablename__ = "subscribers"
    __table_args__ = (
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        Index("ix_subscribers_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(22), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_CHARS))
    email_key: Mapped[str] = mapped_column(String(EMAIL_MAX_CHARS), unique=True)
    name: Mapped[str | None] = mapped_column(String(NAME_MAX_CHARS))
    status: Mapped[str] = mapped_column(String(20))
    themes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]


class ConfirmationToken(Base):
    """An outstanding confirmation mail; only the token's sha256 is kept, the row dies on use."""

    __tablename__ = "confirmation_tokens"
    __table_args__ = (
        CheckConstraint(_one_of("purpose", TOKEN_PURPOSES), name="purpose"),
        Index("ix_confirmation_tokens_expires_at", "expires_at"),
        Index("ix_confirmation_tokens_subscriber_id", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))
    new_email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_CHARS))
    # What this request asked for (name, themes, consent text hash), applied on confirming.
    requested: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ConsentText(Base):
    """Every consent text ever shown, so that a logged hash can be read back."""

    __tablename__ = "consent_texts"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    first_shown_at: Mapped[datetime]


class ConsentEvent(Base):
    """One line of the append-only consent log; erasure only blanks its personal fields."""

    __tablename__ = "consent_events"
    __table_args__ = (
        Index("ix_consent_events_subscriber_id", "subscriber_id"),
        Index("ix_consent_events_subject_hash", "subject_hash", "created_at"),
        # The per-mailbox mail limit counts a mailbox's recent requests for a mail.
        Index("ix_consent_events_mailbox_hash", "mailbox_hash", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    subject_hash: Mapped[str] = mapped_column(String(64))
    # On requests for a mail only: the hash of the mailbox (the address without a
    # +tag), so `victim+1@`, `victim+2@` ... share one mail limit.
    mailbox_hash: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(10))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX_CHARS))
    consent_text_hash: Mapped[str | None] = mapped_column(ForeignKey("consent_texts.hash"))
    # none_as_null: a cleared field is SQL NULL, not the JSON text 'null'.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime]


class Suppression(Base):
    """An address (as a keyed hash) that must not be mailed until a new confirmed opt-in."""

    __tablename__ = "suppressions"
    __table_args__ = (CheckConstraint(_one_of("reason", SUPPRESSION_REASONS), name="reason"),)

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
