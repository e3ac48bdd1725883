"""The tables of editions and the articles in each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.content.models import Article
from newsletter.core.models import Base

EDITION_STATES = ("draft", "approved", "sending", "sent", "superseded")
# A digest is drafted from the feeds; an announcement is written by staff (announcements.py).
EDITION_KINDS = ("digest", "announcement")


class Edition(Base):
    """A numbered issue of the newsletter; its state moves as lifecycle.TRANSITIONS allows."""

    __tablename__ = "editions"
    __table_args__ = (
        CheckConstraint(
            "state IN ('draft', 'approved', 'sending', 'sent', 'superseded')", name="state"
        ),
        Index("ix_editions_state", "state"),
        CheckConstraint("kind IN ('digest', 'announcement')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default="draft")
    kind: Mapped[str] = mapped_column(String(20), default="digest", server_default="digest")
    subject: Mapped[str] = mapped_column(String(300))
    intro_markdown: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    approved_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("editions.id"))
    # A planned send (editions/planning.py): when an approved edition goes out, who said so.
    send_at: Mapped[datetime | None]
    planned_by: Mapped[str | None] = mapped_column(String(100))

    entries: Mapped[list[EditionArticle]] = relationship(
        back_populates="edition",
        order_by="EditionArticle.position",
        cascade="all, delete-orphan",
    )
    items: Mapped[list[EditionItem]] = relationship(
        back_populates="edition",
        order_by="EditionItem.position",
        cascade="all, delete-orphan",
    )


class EditionArticle(Base):
    """An article's place in an edition."""

    __tablename__ = "edition_articles"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    position: Mapped[int]

    edition: Mapped[Edition] = relationship(back_populates="entries")
    article: Mapped[Article] = relationship()


class EditionItem(Base):
    """A hand-written item in an edition (an event, a call to action): not from a feed."""

    __tablename__ = "edition_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    link: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")

    edition: Mapped[Edition] = relationship(back_populates="items")
