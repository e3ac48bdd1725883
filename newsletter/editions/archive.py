"""What the public archive shows: the editions that went out, their web versions, a feed.

An edition is public from the moment its send starts (`sending`: a reader may follow
the mail's "Bekijk in je browser" link while the rest still goes out) and stays so
once `sent`. Drafts, approved and superseded editions are never shown. The Atom feed
lists `sent` editions only, so that each entry's `updated` is the moment its send
finished and never changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

import jinja2
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from newsletter.core.caching import LruCache
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.paging import Paging, count_pages
from newsletter.core.templating import render_template
from newsletter.core.text import one_line
from newsletter.editions.compose import (
    EditionContent,
    archive_url,
    compose_web_version,
    web_version_url,
)
from newsletter.editions.lifecycle import USED_STATES
from newsletter.editions.models import Edition, EditionArticle
from newsletter.editions.preview import edition_content

PUBLIC_STATES = USED_STATES
PAGE_SIZE = 50
FEED_SIZE = 20
# Rendered web versions kept in memory; each is some 50 KB of HTML.
WEB_VERSION_CACHE_SIZE = 32
FEED_TEMPLATE = "web/archive_feed.xml.j2"
# The largest edition number we look up: anything longer is no number of ours, and
# would not fit PostgreSQL's integer column.
MAX_NUMBER_DIGITS = 9
_EDITION_NUMBER = re.compile(rf"[1-9][0-9]{{0,{MAX_NUMBER_DIGITS - 1}}}")
# Characters XML 1.0 does not allow at all, not even as a character reference.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def parse_edition_number(value: str) -> int | None:
    """The edition number `value` spells (digits, no leading zero), else None."""
    return int(value) if _EDITION_NUMBER.fullmatch(value) else None


@dataclass(frozen=True)
class ArchivedEdition:
    """One edition as the archive lists it."""

    number: int
    subject: str
    # When it went out: the end of its send, or while sending, when the send began.
    sent_at: datetime


@dataclass(frozen=True)
class ArchivePage(Paging):
    """One page of the archive list, newest first; `number` counts from 1."""

    editions: tuple[ArchivedEdition, ...]


def archive_page(session: Session, *, page: int, page_size: int = PAGE_SIZE) -> ArchivePage | None:
    """Page `page` of the editions that went out, newest first; None past the last page.

    Page 1 always exists, empty as long as nothing went out.
    """
    total = session.scalar(
        select(func.count()).select_from(Edition).where(Edition.state.in_(PUBLIC_STATES))
    )
    page_count = count_pages(total or 0, page_size)
    if not 1 <= page <= page_count:
        return None
    editions = session.scalars(
        select(Edition)
        .where(Edition.state.in_(PUBLIC_STATES))
        .order_by(Edition.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return ArchivePage(
        editions=tuple(
            ArchivedEdition(
                number=edition.id,
                subject=one_line(edition.subject),
                # Moving to `sending` stamped updated_at, and nothing changes it after.
                sent_at=edition.sent_at or edition.updated_at,
            )
            for edition in editions
        ),
        number=page,
        page_count=page_count,
    )


# -- the web version -------------------------------------------------------------------


@dataclass(frozen=True)
class WebVersion:
    """An edition's public page: the mail's HTML for every reader, and where its
    images come from (scheme://host[:port], sorted), for the page's image policy."""

    number: int
    html: str
    image_origins: tuple[str, ...]


class _ImageFinder(HTMLParser):
    """Collects every URL an image in the document is loaded from."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if not value:
                continue
            if (tag == "img" and name == "src") or name == "background":
                self.urls.append(value)
            elif tag in ("img", "source") and name == "srcset":
                self.urls.extend(item.split()[0] for item in value.split(",") if item.strip())


def image_origins(html_document: str) -> tuple[str, ...]:
    """The origins (scheme://host[:port]) of the images in `html_document`, sorted."""
    finder = _ImageFinder()
    finder.feed(html_document)
    finder.close()
    origins = set()
    for url in finder.urls:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            continue
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            continue
        origin = f"{scheme}://{parts.hostname}"
        if port is not None:
            origin += f":{port}"
        origins.add(origin)
    return tuple(sorted(origins))


class WebVersions:
    """The web versions of the public editions, composed once each and kept in memory.

    A sent edition never changes, so a rendering is kept under the edition's number and
    `updated_at`; at most `max_entries` are kept, the least recently used leaving first.
    Safe to use from several threads (two may compose the same edition at once; both
    get a correct page).
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        environment: jinja2.Environment,
        max_entries: int = WEB_VERSION_CACHE_SIZE,
    ) -> None:
        self._settings = settings
        self._database = database
        self._environment = environment
        self._cache: LruCache[tuple[int, datetime], WebVersion] = LruCache(max_entries)

    def get(self, number: int) -> WebVersion | None:
        """Edition `number`'s web version; None unless it is public.

        Raises CompositionError when a template is broken, or shows a reader's value.
        """
        with self._database.session() as session:
            stamp = session.scalar(
                select(Edition.updated_at).where(
                    Edition.id == number, Edition.state.in_(PUBLIC_STATES)
                )
            )
            if stamp is None:
                return None
            key = (number, stamp)
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            content = _public_content(session, number)
        if content is None:  # it stopped being public between the two queries
            return None
        # Composed after the session closed: no database connection waits for MJML.
        document = compose_web_version(content, self._settings, environment=self._environment)
        version = WebVersion(number=number, html=document, image_origins=image_origins(document))
        self._cache.put(key, version)
        return version


def _public_content(session: Session, number: int) -> EditionContent | None:
    edition = session.scalars(
        select(Edition)
        .where(Edition.id == number, Edition.state.in_(PUBLIC_STATES))
        .options(selectinload(Edition.entries).selectinload(EditionArticle.article))
    ).one_or_none()
    return edition_content(edition) if edition is not None else None


# -- the Atom feed -----------------------------------------------------------------------


@dataclass(frozen=True)
class FeedEntry:
    """One sent edition as the feed shows it; every text is safe to put in XML."""

    id: str
    url: str
    title: str
    updated: str
    article_titles: tuple[str, ...]


def feed_entries(
    session: Session, settings: Settings, *, limit: int = FEED_SIZE
) -> list[FeedEntry]:
    """The newest `limit` sent editions, newest first."""
    editions = session.scalars(
        select(Edition)
        .where(Edition.state == "sent")
        .order_by(Edition.id.desc())
        .limit(limit)
        .options(selectinload(Edition.entries).selectinload(EditionArticle.article))
    )
    entries = []
    for edition in editions:
        url = web_version_url(settings, edition.id)
        assert edition.sent_at is not None  # move_edition stamps it on `sent`
        entries.append(
            FeedEntry(
                # The page's URL doubles as the id: it never changes while base_url stays.
                id=url,
                url=url,
                title=xml_text(edition.subject),
                updated=rfc3339(edition.sent_at),
                article_titles=tuple(xml_text(entry.article.title) for entry in edition.entries),
            )
        )
    return entries


def render_feed(
    entries: list[FeedEntry],
    settings: Settings,
    *,
    environment: jinja2.Environment,
    now: datetime,
) -> str:
    """The Atom feed (RFC 4287) of `entries`, from the template web/archive_feed.xml.j2.

    The feed's `updated` is its newest entry's; `now` stands in while there is none.
    Raises CompositionError when the template is missing or broken.
    """
    base = archive_url(settings)
    context = {
        "site": settings.site,
        "feed_url": f"{base}/feed.xml",
        "archive_url": base,
        # One format throughout (rfc3339), so the newest date is the greatest string.
        "updated": max((entry.updated for entry in entries), default=rfc3339(now)),
        "entries": entries,
    }
    return render_template(environment, FEED_TEMPLATE, context)


def xml_text(value: str) -> str:
    """`value` on one line, without characters XML cannot carry (escaping is Jinja's)."""
    return one_line(_NOT_XML.sub(" ", value))


def rfc3339(moment: datetime) -> str:
    """An aware datetime as Atom writes dates, in UTC to the second: 2026-11-17T08:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
