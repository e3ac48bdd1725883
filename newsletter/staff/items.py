"""Hand-written items as staff add them on the review page, and take them out again."""

from __future__ import annotations

from newsletter.core.clock import Clock
from newsletter.core.db import Database
from newsletter.editions import items


class EditionItems:
    """Adds and removes hand-written items; safe to use from several threads."""

    def __init__(self, database: Database, *, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def add(self, number: int, *, title: str, link: str, text: str) -> None:
        """Add an item to edition `number`; ItemError or EditionError when refused."""
        with self._database.session() as session:
            items.add_item(session, number, title=title, link=link, text=text, now=self._clock())

    def remove(self, number: int, item_id: int) -> None:
        """Take item `item_id` out of edition `number`; ItemError when it is not there."""
        with self._database.session() as session:
            items.remove_item(session, number, item_id, now=self._clock())
