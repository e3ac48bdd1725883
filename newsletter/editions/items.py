"""Hand-written items in an edition: an event or a call to action that is not in a feed.

Staff give a title, a link and a short text; the mail shows the item as an article card
after the feed's articles, to every reader whatever themes they chose. Like any change,
adding or removing one takes an approval back (editions/changes.py). The link must be an
absolute http(s) URL that survives the feed content's sanitizer (nh3) unchanged; title
and text are plain text, escaped where they are shown. Refusals carry a `reason` code;
the staff pages say it in Dutch.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from newsletter.content.sanitize import clean_html
from newsletter.core.errors import EditionError
from newsletter.core.text import bare, one_line
from newsletter.editions.changes import SUBJECT_MAX_CHARS, mark_changed, open_edition
from newsletter.editions.models import Edition, EditionItem

ItemRefusal = Literal["title", "link", "text", "unknown"]
TEXT_MAX_CHARS = 600
LINK_MAX_CHARS = 2000


class ItemError(EditionError):
    """An item refused: `reason` says which field (an ItemRefusal code)."""

    def __init__(self, reason: ItemRefusal, message: str) -> None:
        super().__init__(message)
        self.reason: ItemRefusal = reason


def check_link(link: str) -> str:
    """`link` as the mail will carry it; ItemError("link") unless it is http(s)."""
    candidate = bare(link)
    try:
        parts = urlsplit(candidate)
    except ValueError as exc:
        raise ItemError("link", f"not a link: {link!r}") from exc
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or len(candidate) > LINK_MAX_CHARS
    ):
        raise ItemError("link", f"not an http(s) link: {link!r}")
    # The same sanitizer as the feed's content: a link it would change or drop is refused.
    anchor = f'<a href="{escape(candidate)}">x</a>'
    if f'href="{escape(candidate)}"' not in clean_html(anchor, base_url=None):
        raise ItemError("link", f"not a link the mail may carry: {link!r}")
    return candidate


def add_item(
    session: Session, number: int, *, title: str, link: str, text: str, now: datetime
) -> EditionItem:
    """Add a hand-written item at the end of edition `number`'s items."""
    edition = open_edition(session, number)
    clean_title = one_line(title)
    if not clean_title or len(clean_title) > SUBJECT_MAX_CHARS:
        raise ItemError("title", "the title is empty or too long")
    clean_text = " ".join(text.split())
    if len(clean_text) > TEXT_MAX_CHARS:
        raise ItemError("text", f"the text is longer than {TEXT_MAX_CHARS} characters")
    item = EditionItem(
        position=len(edition.items), title=clean_title, link=check_link(link), text=clean_text
    )
    edition.items.append(item)
    mark_changed(edition, now=now)
    return item


def remove_item(session: Session, number: int, item_id: int, *, now: datetime) -> Edition:
    """Take hand-written item `item_id` out of edition `number`."""
    edition = open_edition(session, number)
    found = next((item for item in edition.items if item.id == item_id), None)
    if found is None:
        raise ItemError("unknown", f"item {item_id} is not in edition {number}")
    edition.items.remove(found)
    for position, item in enumerate(edition.items):
        item.position = position
    mark_changed(edition, now=now)
    return edition
