"""One entry of a parsed feed made a FeedEntry: plain title, safe HTML, http(s) links, UTC dates."""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from newsletter.content.mediarss import ItemFacts
from newsletter.content.sanitize import clean_html, excerpt, html_to_text, plain_text_to_html
from newsletter.core.text import one_line, shorten

# Lengths of the articles table's columns (content/models.py), so every entry can be stored.
MAX_GUID_CHARS = 1000
MAX_URL_CHARS = 2000
MAX_TITLE_CHARS = 500
MAX_AUTHOR_CHARS = 200
# The most HTML one entry's summary or content may have, before sanitizing: far beyond
# any article, and a bound on what one entry costs to clean and to store.
MAX_HTML_CHARS = 1_000_000
# A title made up from the text when an entry has none.
FALLBACK_TITLE_WORDS = 12

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
HTTP_SCHEMES = frozenset({"http", "https"})


class EntryTooLarge(ValueError):
    """An entry's HTML is over MAX_HTML_CHARS; the message says how large, in one line."""


@dataclass(frozen=True)
class FeedEntry:
    """One article as the feed describes it; HTML fields are sanitized, dates aware UTC."""

    guid: str
    link: str | None
    title: str
    author: str | None
    summary_html: str
    content_html: str
    categories: tuple[str, ...]
    image_url: str | None
    image_alt: str | None
    published_at: datetime | None
    updated_at: datetime | None
    # What was changed beyond sanitizing, one line each (not part of the content).
    notes: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """sha256 hex of what a reader sees; it changes when the article was edited.

        The guid is the identity, not content; `updated_at` is left out because
        WordPress moves it on every save, even when nothing visible changed.
        """
        published = self.published_at.isoformat() if self.published_at else None
        visible = [
            self.link,
            self.title,
            self.author,
            self.summary_html,
            self.content_html,
            list(self.categories),
            self.image_url,
            self.image_alt,
            published,
        ]
        encoded = json.dumps(visible, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _text(value: Any) -> str:
    return one_line(value) if isinstance(value, str) else ""


def http_url(value: Any, base: str) -> str | None:
    """`value` as an absolute http(s) URL that fits the database, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        url = urljoin(base, value.strip())
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme not in HTTP_SCHEMES or len(url) > MAX_URL_CHARS:
        return None
    return url


def _utc(value: Any) -> datetime | None:
    # feedparser turns every date it understands into a UTC struct_time.
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:5], min(value.tm_sec, 59), tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _html_of(value: Any, content_type: str, base: str, notes: list[str]) -> str:
    """Safe HTML from feed text: HTML is sanitized, anything else is escaped as text."""
    if not isinstance(value, str) or not value.strip():
        return ""
    if len(value) > MAX_HTML_CHARS:
        raise EntryTooLarge(
            f"its text is {len(value):,} characters, over the limit of {MAX_HTML_CHARS:,}"
        )
    if content_type in HTML_TYPES:
        return clean_html(value, base_url=base, notes=notes)
    return plain_text_to_html(value)


def plain_title(raw: Any) -> str:
    """An entry's or a feed's title as one line of text."""
    detail = raw.get("title_detail") or {}
    title = raw.get("title")
    if not isinstance(title, str):
        return ""
    if detail.get("type") in HTML_TYPES:
        title = html_to_text(title)
    return one_line(title)


def _content(raw: Any, base: str, *, is_atom: bool, notes: list[str]) -> str:
    contents = [item for item in raw.get("content") or [] if isinstance(item, Mapping)]
    # Prefer the HTML body when a feed offers several (Atom allows it).
    contents.sort(key=lambda item: item.get("type") not in HTML_TYPES)
    for item in contents:
        content_type = (item.get("type") or "") if is_atom else "text/html"
        rendered = _html_of(item.get("value"), content_type, item.get("base") or base, notes)
        if rendered:
            return rendered
    return ""


def _summary(raw: Any, base: str, *, is_atom: bool, notes: list[str]) -> str:
    # Without a summary_detail, feedparser's summary is a copy of the content.
    detail = raw.get("summary_detail")
    if not detail:
        return ""
    # Only Atom says what type its text is. An RSS description is HTML by convention,
    # and the type feedparser records may be that of a media:description.
    content_type = (detail.get("type") or "") if is_atom else "text/html"
    return _html_of(raw.get("summary"), content_type, detail.get("base") or base, notes)


def _author(raw: Any) -> str | None:
    detail = raw.get("author_detail") or {}
    name = html.unescape(_text(detail.get("name")) or _text(raw.get("author")))
    return shorten(name, MAX_AUTHOR_CHARS) if name else None


def _categories(raw: Any) -> tuple[str, ...]:
    seen: set[str] = set()
    categories = []
    for tag in raw.get("tags") or []:
        # WordPress writes names as stored, "&amp;" and all, inside CDATA.
        name = html.unescape(_text(tag.get("term")) or _text(tag.get("label")))
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            categories.append(name)
    return tuple(categories)


def _is_image_media(media: Any) -> bool:
    """A media:content is an image when it says so, or, saying nothing, looks like one."""
    medium, declared = media.get("medium"), media.get("type")
    if medium or declared:
        return medium == "image" or str(declared or "").strip().lower().startswith("image/")
    guessed, _ = mimetypes.guess_type(urlsplit(str(media.get("url") or "")).path)
    return bool(guessed and guessed.startswith("image/"))


def _image_candidates(raw: Any) -> Iterator[str]:
    """Image URLs as the feed gives them: image enclosures, media content, thumbnails."""
    for enclosure in raw.get("enclosures") or []:
        declared = str(enclosure.get("type") or "").strip().lower()
        if declared.startswith("image/") and isinstance(enclosure.get("href"), str):
            yield enclosure["href"]
    for media in raw.get("media_content") or []:
        if isinstance(media.get("url"), str) and _is_image_media(media):
            yield media["url"]
    for thumbnail in raw.get("media_thumbnail") or []:
        if isinstance(thumbnail.get("url"), str):
            yield thumbnail["url"]


def _image(raw: Any, base: str, facts: ItemFacts | None) -> tuple[str | None, str | None]:
    for candidate in _image_candidates(raw):
        url = http_url(candidate, base)
        if url:
            alt = facts.image_alts.get(candidate.strip()) if facts else None
            return url, alt
    return None, None


def _fallback_guid(raw: Any) -> str:
    # From the feed's own text, not our sanitized HTML, so a change in our sanitizer
    # never turns an old entry into a new one.
    seed = f"{raw.get('title') or ''}\n{raw.get('summary') or ''}"
    return "sha256:" + hashlib.sha256(seed.encode("utf-8")).hexdigest()


def _guid(raw: Any, link: str | None) -> str:
    guid = _text(raw.get("id")) or link or _fallback_guid(raw)
    if len(guid) > MAX_GUID_CHARS:
        return "sha256:" + hashlib.sha256(guid.encode("utf-8")).hexdigest()
    return guid


def _entry_base(raw: Any, feed_url: str) -> str:
    for key in ("summary_detail", "title_detail"):
        base = (raw.get(key) or {}).get("base")
        if isinstance(base, str) and base:
            return base
    for content in raw.get("content") or []:
        if content.get("base"):
            return str(content["base"])
    return feed_url


def feed_entry(
    raw: Any, *, facts: ItemFacts | None, feed_url: str, is_atom: bool
) -> FeedEntry | None:
    """A FeedEntry from one feedparser entry, or None when it has nothing to show.

    Raises EntryTooLarge when its summary or content is over MAX_HTML_CHARS.
    """
    base = _entry_base(raw, feed_url)
    notes: list[str] = []
    # feedparser files media:title and media:description under the entry's own title,
    # summary or content, depending on what came before them; the facts say which of
    # those the item really has.
    own = facts.own_elements if facts else None
    title = plain_title(raw) if own is None or "title" in own else ""
    if facts is not None and facts.has_media_text and not is_atom:
        summary_html = _html_of(facts.own_texts.get("description"), "text/html", base, notes)
        content_html = _html_of(facts.own_texts.get("encoded"), "text/html", base, notes)
    else:
        has_summary = own is None or bool(own & {"description", "summary"})
        summary_html = _summary(raw, base, is_atom=is_atom, notes=notes) if has_summary else ""
        content_html = _content(raw, base, is_atom=is_atom, notes=notes)
    if not title:
        title = excerpt(content_html or summary_html, words=FALLBACK_TITLE_WORDS)
    if not title:
        return None
    link = http_url(raw.get("link"), base)
    image_url, image_alt = _image(raw, base, facts)
    published_at = _utc(raw.get("published_parsed"))
    # Not raw.get("updated_parsed"): feedparser would answer with the published date
    # and a DeprecationWarning when the entry has no updated date of its own.
    updated_at = _utc(dict.get(raw, "updated_parsed"))
    return FeedEntry(
        guid=_guid(raw, link),
        link=link,
        title=shorten(title, MAX_TITLE_CHARS),
        author=_author(raw),
        summary_html=summary_html,
        content_html=content_html,
        categories=_categories(raw),
        image_url=image_url,
        image_alt=image_alt,
        published_at=published_at or updated_at,
        updated_at=updated_at,
        notes=tuple(dict.fromkeys(notes)),
    )
