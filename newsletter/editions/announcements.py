"""One-off editions: an announcement written by staff, with or without chosen articles.

An announcement is an edition of kind "announcement": its subject, its body (Markdown,
kept as the edition's introduction) and any articles staff chose, in their order. It
goes through the same review, test copy, approval and send as a digest, and to every
confirmed reader whatever themes they chose. A new digest does not supersede it, and
the articles it quotes stay free for the next digest. Refusals carry a `reason` code;
the staff pages say it in Dutch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.content.models import Article
from newsletter.core.errors import EditionError
from newsletter.editions.changes import check_intro, check_subject
from newsletter.editions.models import Edition, EditionArticle

AnnouncementRefusal = Literal["subject", "body", "articles"]
# How many of the newest articles the form offers to add.
ARTICLE_CHOICES = 30


class AnnouncementError(EditionError):
    """An announcement refused: `reason` says which field (an AnnouncementRefusal)."""

    def __init__(self, reason: AnnouncementRefusal, message: str) -> None:
        super().__init__(message)
        self.reason: AnnouncementRefusal = reason


@dataclass(frozen=True)
class ArticleChoice:
    id: int
    title: str
    published_at: datetime | None


def article_choices(session: Session, *, limit: int = ARTICLE_CHOICES) -> list[ArticleChoice]:
    """The newest articles, to choose from for an announcement."""
    rows = session.execute(
        select(Article.id, Article.title, Article.published_at)
        .order_by(Article.first_seen_at.desc(), Article.id.desc())
        .limit(limit)
    )
    return [ArticleChoice(*row) for row in rows]


def create_announcement(
    session: Session,
    *,
    subject: str,
    body_markdown: str,
    article_ids: Sequence[int],
    now: datetime,
) -> Edition:
    """A draft announcement; AnnouncementError when a field does not do."""
    try:
        clean_subject = check_subject(subject)
    except EditionError as exc:
        raise AnnouncementError("subject", str(exc)) from exc
    try:
        body = check_intro(body_markdown)
    except EditionError as exc:
        raise AnnouncementError("body", str(exc)) from exc
    if not body:
        raise AnnouncementError("body", "the announcement has no text")
    chosen = list(dict.fromkeys(article_ids))
    found = set(session.scalars(select(Article.id).where(Article.id.in_(chosen))))
    if len(found) != len(chosen):
        raise AnnouncementError("articles", "an article chosen does not exist")
    edition = Edition(
        kind="announcement",
        state="draft",
        subject=clean_subject,
        intro_markdown=body,
        created_at=now,
        updated_at=now,
    )
    edition.entries = [
        EditionArticle(article_id=article_id, position=position)
        for position, article_id in enumerate(chosen)
    ]
    session.add(edition)
    session.flush()
    return edition
