"""The draft review as staff work it: an edition with its deliveries, its preview, its changes.

The review shows the mail as readers will get it (composed with sample recipient values,
and kept in memory until the edition changes) beside what went out of it so far. While
the edition is open (draft or approved) staff can change the subject and the
introduction, take articles out and change their order; every change takes an approval
back (editions/changes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import jinja2
from sqlalchemy import select

from newsletter.core.caching import LruCache
from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import EditionError
from newsletter.core.records import record_from
from newsletter.delivery.outbox import StateCounts, state_counts
from newsletter.delivery.send import recipient_count
from newsletter.editions import changes
from newsletter.editions.archive import image_origins
from newsletter.editions.lifecycle import OPEN_STATES, get_edition
from newsletter.editions.models import Edition
from newsletter.editions.preview import edition_content, render_preview
from newsletter.staff.accounts import StaffMember

# Previews kept in memory; each is some 50 KB of HTML and its text.
PREVIEW_CACHE_SIZE = 8

ArticleAction = Literal["remove", "up", "down"]
ARTICLE_ACTIONS: tuple[ArticleAction, ...] = ("remove", "up", "down")


@dataclass(frozen=True)
class ArticleLine:
    id: int
    title: str
    link: str | None
    published_at: datetime | None


@dataclass(frozen=True)
class ItemLine:
    """A hand-written item as the review page lists it."""

    id: int
    title: str
    link: str
    text: str


@dataclass(frozen=True)
class Review:
    """What the review page shows of one edition."""

    number: int
    state: str
    subject: str
    intro_markdown: str
    updated_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    articles: list[ArticleLine]
    deliveries: StateCounts
    send_at: datetime | None = None  # a planned send (editions/planning.py)
    planned_by: str | None = None
    items: tuple[ItemLine, ...] = ()  # hand-written items (editions/items.py)
    kind: str = "digest"  # or "announcement" (editions/announcements.py)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def has_mail(self) -> bool:
        """Whether there is a mail to show and send: articles, or an announcement."""
        return bool(self.articles) or self.kind == "announcement"


@dataclass(frozen=True)
class Preview:
    """The mail as a reader of every theme gets it, and where its images come from."""

    html: str
    text: str
    image_origins: tuple[str, ...]


def article_action(value: str) -> ArticleAction | None:
    """The article action `value` names (a form's button), else None."""
    return next((action for action in ARTICLE_ACTIONS if action == value), None)


def allowed_test_addresses(member: StaffMember, staff_list: Sequence[str]) -> list[str]:
    """Where this staff member may send a test: their own address, then the staff list."""
    found = [member.email] if member.email else []
    return list(dict.fromkeys([*found, *staff_list]))


def load_review(database: Database, number: int) -> Review:
    """Edition `number` as the review page shows it; EditionError when there is none."""
    with database.session() as session:
        edition = get_edition(session, number)
        return record_from(
            Review,
            edition,
            number=edition.id,
            articles=[record_from(ArticleLine, entry.article) for entry in edition.entries],
            deliveries=state_counts(session, edition.id),
            items=tuple(record_from(ItemLine, item) for item in edition.items),
        )


class DraftReview:
    """Reads and changes editions for the review page; safe to use from several threads."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        clock: Clock,
        environment: jinja2.Environment,
        max_previews: int = PREVIEW_CACHE_SIZE,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._environment = environment
        self._previews: LruCache[tuple[int, datetime], Preview] = LruCache(max_previews)

    def load(self, number: int) -> Review:
        """Edition `number` as the review page shows it; EditionError when there is none."""
        return load_review(self._database, number)

    def recipients(self, review: Review) -> int:
        """How many get the edition: who would now while it is open, else its outbox."""
        if review.is_open:
            return recipient_count(self._database, review.number)
        return review.deliveries.total

    def preview(self, number: int) -> Preview:
        """Edition `number` composed for a sample reader, kept until the edition changes.

        EditionError when there is no such edition; CompositionError when it has no
        articles or a template is broken.
        """
        with self._database.session() as session:
            stamp = session.scalar(select(Edition.updated_at).where(Edition.id == number))
            if stamp is None:
                raise EditionError(f"there is no edition {number}")
            key = (number, stamp)
            cached = self._previews.get(key)
            if cached is not None:
                return cached
            content = edition_content(get_edition(session, number))
        # Composed after the session closed: no database connection waits for MJML.
        html_document, text_document = render_preview(
            content, self._settings, environment=self._environment
        )
        preview = Preview(html_document, text_document, image_origins(html_document))
        self._previews.put(key, preview)
        return preview

    def edit_text(self, number: int, *, subject: str, intro_markdown: str) -> None:
        """New subject and introduction; EditionError when they or the state do not do."""
        with self._database.session() as session:
            changes.edit_text(
                session, number, subject=subject, intro_markdown=intro_markdown, now=self._clock()
            )

    def change_article(self, number: int, article_id: int, action: ArticleAction) -> None:
        """Take an article out, or move it one place up or down; EditionError if refused."""
        now = self._clock()
        with self._database.session() as session:
            if action == "remove":
                changes.remove_article(session, number, article_id, now=now)
            else:
                offset = -1 if action == "up" else 1
                changes.move_article(session, number, article_id, offset=offset, now=now)

    def approve(self, number: int) -> None:
        """Mark edition `number` approved; EditionError when it is no longer open."""
        with self._database.session() as session:
            changes.approve(session, number, now=self._clock())
