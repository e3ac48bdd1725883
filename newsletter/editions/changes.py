"""Staff changes to an edition before it goes out: subject, intro, which articles, order.

Only an open edition (draft or approved) can change. A change to an approved edition
takes the approval back: what was approved is no longer what would go out. Once an
edition is sending or sent it is a record of what people received, and stays as it is.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.core.errors import EditionError
from newsletter.core.text import one_line
from newsletter.editions.lifecycle import OPEN_STATES, get_edition, move_edition
from newsletter.editions.models import Edition, EditionArticle

SUBJECT_MAX_CHARS = 300
INTRO_MAX_CHARS = 10_000


def open_edition(session: Session, number: int) -> Edition:
    """Edition `number` when it may still change; EditionError when it may not."""
    edition = get_edition(session, number)
    if edition.state not in OPEN_STATES:
        raise EditionError(f"edition {number} is {edition.state}; it can no longer be changed")
    return edition


def mark_changed(edition: Edition, *, now: datetime) -> None:
    """Note a change: an approval is taken back, and the preview is made afresh."""
    if edition.state == "approved":
        move_edition(edition, "draft", now=now)
    edition.updated_at = now


def check_subject(subject: str) -> str:
    cleaned = one_line(subject)
    if not cleaned:
        raise EditionError("the subject is empty")
    if len(cleaned) > SUBJECT_MAX_CHARS:
        raise EditionError(f"the subject is longer than {SUBJECT_MAX_CHARS} characters")
    return cleaned


def check_intro(intro_markdown: str) -> str:
    cleaned = intro_markdown.replace("\r\n", "\n").strip()
    if len(cleaned) > INTRO_MAX_CHARS:
        raise EditionError(f"the introduction is longer than {INTRO_MAX_CHARS} characters")
    return cleaned


def edit_text(
    session: Session, number: int, *, subject: str, intro_markdown: str, now: datetime
) -> Edition:
    """Give edition `number` a new subject and introduction (Markdown)."""
    edition = open_edition(session, number)
    new_subject, new_intro = check_subject(subject), check_intro(intro_markdown)
    if (new_subject, new_intro) != (edition.subject, edition.intro_markdown):
        edition.subject, edition.intro_markdown = new_subject, new_intro
        mark_changed(edition, now=now)
    return edition


def _entry(edition: Edition, article_id: int) -> EditionArticle:
    for entry in edition.entries:
        if entry.article_id == article_id:
            return entry
    raise EditionError(f"article {article_id} is not in edition {edition.id}")


def remove_article(session: Session, number: int, article_id: int, *, now: datetime) -> Edition:
    """Take an article out of edition `number`; the last one cannot go."""
    edition = open_edition(session, number)
    entry = _entry(edition, article_id)
    if len(edition.entries) == 1:
        raise EditionError(f"article {article_id} is the only one left in edition {number}")
    edition.entries.remove(entry)
    for position, remaining in enumerate(edition.entries):
        remaining.position = position
    mark_changed(edition, now=now)
    return edition


def move_article(
    session: Session, number: int, article_id: int, *, offset: int, now: datetime
) -> Edition:
    """Move an article `offset` places (-1 up, +1 down); at either end it stays put."""
    edition = open_edition(session, number)
    entries = list(edition.entries)
    index = entries.index(_entry(edition, article_id))
    target = max(0, min(len(entries) - 1, index + offset))
    if target == index:
        return edition
    entries.insert(target, entries.pop(index))
    for position, entry in enumerate(entries):
        entry.position = position
    mark_changed(edition, now=now)
    return edition


def approve(session: Session, number: int, *, now: datetime) -> Edition:
    """Mark a draft as approved by staff (it is what will go out)."""
    edition = open_edition(session, number)
    if edition.state == "draft":
        move_edition(edition, "approved", now=now)
    return edition
