"""Reading RSS and Atom bytes into plain entries with safe HTML: pure, no I/O."""

from __future__ import annotations

import hashlib
import html
import io
import json
import mimetypes
import time
import xml.sax
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from newsletter.content.mediarss import MEDIA_NAMESPACE, ItemFacts, scan_items
from newsletter.content.sanitize import clean_html, excerpt, html_to_text, plain_text_to_html
from newsletter.content.xmlguard import declares_entities
from newsletter.core.errors import FeedParseError
from newsletter.core.text import one_line, shorten

MAX_ENTRIES = 500
# Lengths of the articles table's columns (models.Article), so every entry can be stored.
MAX_GUID_CHARS = 1000
MAX_URL_CHARS = 2000
MAX_TITLE_CHARS = 500
MAX_AUTHOR_CHARS = 200
MAX_ALT_CHARS = 500
# A title made up from the text when an entry has none.
FALLBACK_TITLE_WORDS = 12

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
HTTP_SCHEMES = frozenset({"http", "https"})


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


@dataclass(frozen=True)
class ParsedFeed:
    """A feed's own title and link, its entries in feed order, and what was odd about it."""

    title: str | None
    link: str | None
    entries: tuple[FeedEntry, ...]
    warnings: tuple[str, ...]


# -- describing what went wrong ---------------------------------------------------------


def _describe_exception(exc: BaseException) -> str:
    if isinstance(exc, xml.sax.SAXParseException):
        where = f"line {exc.getLineNumber()}, column {exc.getColumnNumber()}"
        return f"{exc.getMessage()} at {where}"
    return one_line(str(exc)) or type(exc).__name__


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _looks_like_html(body: bytes, content_type: str | None) -> bool:
    if _media_type(content_type) == "text/html":
        return True
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _why_not_a_feed(body: bytes, content_type: str | None, result: Any) -> str:
    if _looks_like_html(body, content_type):
        return "not a feed: the response is an HTML page"
    if body.lstrip()[:1] in (b"{", b"["):
        return "not a feed: the response looks like JSON, not RSS or Atom"
    if result.get("bozo"):
        problem = _describe_exception(result["bozo_exception"])
        return f"not a feed: not an XML document ({problem})"
    return "not a feed: an XML document, but not RSS or Atom"


# -- turning one feedparser entry into a FeedEntry -----------------------------------


def _text(value: Any) -> str:
    return one_line(value) if isinstance(value, str) else ""


def _http_url(value: Any, base: str) -> str | None:
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


def _html_of(value: Any, content_type: str, base: str) -> str:
    """Safe HTML from feed text: HTML is sanitized, anything else is escaped as text."""
    if not isinstance(value, str) or not value.strip():
        return ""
    if content_type in HTML_TYPES:
        return clean_html(value, base_url=base)
    return plain_text_to_html(value)


def _plain_title(raw: Any) -> str:
    """An entry's or a feed's title as one line of text."""
    detail = raw.get("title_detail") or {}
    title = raw.get("title")
    if not isinstance(title, str):
        return ""
    if detail.get("type") in HTML_TYPES:
        title = html_to_text(title)
    return one_line(title)


def _content(raw: Any, base: str, *, is_atom: bool) -> str:
    contents = [item for item in raw.get("content") or [] if isinstance(item, Mapping)]
    # Prefer the HTML body when a feed offers several (Atom allows it).
    contents.sort(key=lambda item: item.get("type") not in HTML_TYPES)
    for item in contents:
        content_type = (item.get("type") or "") if is_atom else "text/html"
        rendered = _html_of(item.get("value"), content_type, item.get("base") or base)
        if rendered:
            return rendered
    return ""


def _summary(raw: Any, base: str, *, is_atom: bool) -> str:
    # Without a summary_detail, feedparser's summary is a copy of the content.
    detail = raw.get("summary_detail")
    if not detail:
        return ""
    # Only Atom says what type its text is. An RSS description is HTML by convention,
    # and the type feedparser records may be that of a media:description.
    content_type = (detail.get("type") or "") if is_atom else "text/html"
    return _html_of(raw.get("summary"), content_type, detail.get("base") or base)


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
        url = _http_url(candidate, base)
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


def _entry(raw: Any, *, facts: ItemFacts | None, feed_url: str, is_atom: bool) -> FeedEntry | None:
    """A FeedEntry from one feedparser entry, or None when it has nothing to show."""
    base = _entry_base(raw, feed_url)
    # feedparser files media:title and media:description under the entry's own title,
    # summary or content, depending on what came before them; the facts say which of
    # those the item really has.
    own = facts.own_elements if facts else None
    title = _plain_title(raw) if own is None or "title" in own else ""
    if facts is not None and facts.has_media_text and not is_atom:
        summary_html = _html_of(facts.own_texts.get("description"), "text/html", base)
        content_html = _html_of(facts.own_texts.get("encoded"), "text/html", base)
    else:
        has_summary = own is None or bool(own & {"description", "summary"})
        summary_html = _summary(raw, base, is_atom=is_atom) if has_summary else ""
        content_html = _content(raw, base, is_atom=is_atom)
    if not title:
        title = excerpt(content_html or summary_html, words=FALLBACK_TITLE_WORDS)
    if not title:
        return None
    link = _http_url(raw.get("link"), base)
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
    )


# -- the feed ------------------------------------------------------------------------


def _feedparser_result(body: bytes, *, url: str, content_type: str | None) -> Any:
    # Without a Content-Type feedparser assumes Latin-1; "application/xml" lets the
    # document's own declaration (or XML's UTF-8 default) decide, as for a file.
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    # nh3 is the one sanitizer and resolver of HTML. feedparser's own pass would run first
    # and leave the fallback text of the elements it drops, and turn a javascript: link
    # into a link to the feed; the base URLs it tracks (xml:base) are used all the same.
    # A BytesIO, never the bytes: feedparser opens a bytes argument as a path if it can.
    return feedparser.parse(
        io.BytesIO(body),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )


def _encoding_warning(result: Any) -> str | None:
    exc = result.get("bozo_exception")
    if isinstance(exc, feedparser.CharacterEncodingUnknown):
        return f"unknown character encoding, text may be garbled: {_describe_exception(exc)}"
    return None


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Entries from RSS 0.9x, 1.0 or 2.0 or Atom 1.0 bytes fetched from `url`.

    Raises FeedParseError with a one-line message when the bytes hold no usable feed:
    empty, HTML, garbage, entity declarations, or malformed with nothing recovered.
    A malformed feed whose entries could be recovered is kept, with a warning.
    """
    if not body.strip():
        raise FeedParseError(f"{url}: empty response, not a feed")
    if declares_entities(body, content_type=content_type):
        raise FeedParseError(
            f"{url}: refused: the document declares XML entities (<!ENTITY>), "
            "which feeds do not need and attacks such as billion laughs use"
        )
    result = _feedparser_result(body, url=url, content_type=content_type)
    raw_entries = list(result.get("entries") or [])
    if not result.get("version") and not raw_entries:
        raise FeedParseError(f"{url}: {_why_not_a_feed(body, content_type, result)}")
    problem = _parse_problem(result)
    if problem is not None and not raw_entries:
        raise FeedParseError(f"{url}: malformed feed with no entries: {problem}")

    warnings = _feed_warnings(result, len(raw_entries), problem)
    facts = _media_facts(body, result, len(raw_entries), problem)
    is_atom = str(result.get("version") or "").startswith("atom")
    entries, skipped = _unique_entries(
        raw_entries[:MAX_ENTRIES], facts, feed_url=url, is_atom=is_atom
    )
    feed = result.get("feed") or {}
    return ParsedFeed(
        title=shorten(_plain_title(feed), MAX_TITLE_CHARS) or None,
        link=_http_url(feed.get("link"), url),
        entries=entries,
        warnings=(*warnings, *skipped),
    )


def _parse_problem(result: Any) -> str | None:
    """What was wrong with the document, when feedparser still read some of it."""
    exc = result.get("bozo_exception") if result.get("bozo") else None
    # feedparser also flags a feed served as text/html or with a wrong charset; those
    # parse fine and are no news to anyone reading the warnings.
    if isinstance(exc, Exception) and not isinstance(exc, feedparser.ThingsNobodyCaresAboutButMe):
        return _describe_exception(exc)
    return None


def _feed_warnings(result: Any, entry_count: int, problem: str | None) -> list[str]:
    """What was odd about the feed as a whole: malformed, its encoding, too many entries."""
    warnings: list[str] = []
    if problem is not None:
        kept = f"{entry_count} recovered entr{'y' if entry_count == 1 else 'ies'}"
        warnings.append(f"malformed feed, kept {kept}: {problem}")
    encoding_warning = _encoding_warning(result)
    if encoding_warning:
        warnings.append(encoding_warning)
    if entry_count > MAX_ENTRIES:
        warnings.append(f"the feed has {entry_count} entries; kept the first {MAX_ENTRIES}")
    return warnings


def _media_facts(
    body: bytes, result: Any, entry_count: int, problem: str | None
) -> list[ItemFacts] | None:
    """Per entry, what a plain XML parse says of its Media RSS; None when not needed."""
    # Only feeds using Media RSS need the second parse, and only a clean parse lines up.
    if MEDIA_NAMESPACE not in (result.get("namespaces") or {}).values() or problem is not None:
        return None
    facts = scan_items(body)
    if facts is not None and len(facts) != entry_count:
        return None
    return facts


def _unique_entries(
    raw_entries: list[Any], facts: list[ItemFacts] | None, *, feed_url: str, is_atom: bool
) -> tuple[tuple[FeedEntry, ...], list[str]]:
    """The entries worth keeping, the first of each guid, and a warning per one skipped."""
    entries: list[FeedEntry] = []
    warnings: list[str] = []
    seen_guids: set[str] = set()
    for index, raw in enumerate(raw_entries):
        item_facts = facts[index] if facts else None
        entry = _entry(raw, facts=item_facts, feed_url=feed_url, is_atom=is_atom)
        if entry is None:
            warnings.append(f"skipped entry {index + 1}: it has no title, summary or content")
        elif entry.guid in seen_guids:
            warnings.append(f"skipped entry {index + 1}: its id {entry.guid!r} came before")
        else:
            seen_guids.add(entry.guid)
            entries.append(entry)
    return tuple(entries), warnings
