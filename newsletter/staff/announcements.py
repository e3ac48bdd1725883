"""One-off announcements as staff write them in /admin ("Nieuwe mededeling")."""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.core.clock import Clock
from newsletter.core.db import Database
from newsletter.editions import announcements
from newsletter.editions.announcements import ArticleChoice


class Announcements:
    """Writes announcements for the staff pages; safe to use from several threads."""

    def __init__(self, database: Database, *, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def choices(self) -> list[ArticleChoice]:
        """The newest articles, to choose from."""
        with self._database.session() as session:
            return announcements.article_choices(session)

    def write(self, *, subject: str, body_markdown: str, article_ids: Sequence[int]) -> int:
        """A new draft announcement's number; AnnouncementError when a field does not do."""
        with self._database.session() as session:
            edition = announcements.create_announcement(
                session,
                subject=subject,
                body_markdown=body_markdown,
                article_ids=article_ids,
                now=self._clock(),
            )
            return edition.id
