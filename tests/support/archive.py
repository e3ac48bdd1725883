"""Editions in the database in any state, for the tests of the public archive."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from sqlalchemy import select

from newsletter.content.models import Article, Feed
from newsletter.core.db import Database
from newsletter.editions.lifecycle import move_edition
from newsletter.editions.models import Edition, EditionArticle
from tests.support.clock import FixedClock

ATOM = "{http://www.w3.org/2005/Atom}"
SITE = "https://www.rvjeugdzorg.nl"
# The moves that bring a new draft into each state, as the product makes them.
MOVES: dict[str, tuple[str, ...]] = {
    "draft": (),
    "approved": ("approved",),
    "sending": ("sending",),
    "sent": ("sending", "sent"),
    "superseded": ("superseded",),
}
NOT_PUBLIC = ("draft", "approved", "superseded")
_guids = itertools.count(1)


def add_edition(
    database: Database,
    clock: FixedClock,
    state: str,
    *,
    subject: str | None = None,
    titles: Sequence[str] = ("Ouders aan het woord", "Actiedag in Utrecht"),
    categories: Sequence[str] = ("Doe je mee?",),
    image_url: str | None = None,
    intro_markdown: str = "",
) -> int:
    """A new edition of articles titled `titles`, moved into `state`; its number."""
    with database.session() as session:
        feed = session.scalars(select(Feed)).first()
        if feed is None:
            feed = Feed(url=f"{SITE}/feed/", created_at=clock())
            session.add(feed)
        edition = Edition(
            state="draft",
            subject=subject or "Nieuwsbrief",
            intro_markdown=intro_markdown,
            created_at=clock(),
            updated_at=clock(),
        )
        for position, title in enumerate(titles):
            guid = next(_guids)
            article = Article(
                feed=feed,
                guid=f"guid-{guid}",
                link=f"{SITE}/nieuws/artikel-{guid}/",
                title=title,
                summary_html=f"<p>Over {title}.</p>",
                categories=list(categories),
                image_url=image_url if position == 0 else None,
                image_alt="Een foto" if image_url and position == 0 else None,
                published_at=clock(),
                first_seen_at=clock(),
                last_seen_at=clock(),
                content_hash=str(guid),
            )
            edition.entries.append(EditionArticle(article=article, position=position))
        session.add(edition)
        session.flush()
        if subject is None:
            edition.subject = f"Nieuwsbrief {edition.id}"
        for state_on_the_way in MOVES[state]:
            move_edition(edition, state_on_the_way, now=clock.advance(minutes=5))
        return edition.id
