"""Reading RSS and Atom bytes into plain entries with safe HTML: pure, no I/O."""

from __future__ import annotations

import io
import xml.sax
from dataclasses import dataclass
from typing import Any

import feedparser

from newsletter.content.entries import (
    MAX_TITLE_CHARS,
    EntryTooLarge,
    FeedEntry,
    feed_entry,
    http_url,
    plain_title,
)
from newsletter.content.mediarss import MEDIA_NAMESPACE, ItemFacts, scan_items
from newsletter.content.xmlguard import declares_entities, hiding_encoding
from newsletter.core.errors import FeedParseError
from newsletter.core.text import one_line, shorten

MAX_ENTRIES = 500


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
    encoding = hiding_encoding(body, content_type=content_type)
    if encoding is not None:
        raise FeedParseError(
            f"{url}: refused: the document is in {encoding.upper()}, which can hide markup "
            "from the checks; feeds use UTF-8"
        )
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
        title=shorten(plain_title(feed), MAX_TITLE_CHARS) or None,
        link=http_url(feed.get("link"), url),
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
        try:
            entry = feed_entry(raw, facts=item_facts, feed_url=feed_url, is_atom=is_atom)
        except EntryTooLarge as exc:
            warnings.append(f"skipped entry {index + 1}: {exc}")
            continue
        if entry is None:
            warnings.append(f"skipped entry {index + 1}: it has no title, summary or content")
        elif entry.guid in seen_guids:
            warnings.append(f"skipped entry {index + 1}: its id {entry.guid!r} came before")
        else:
            seen_guids.add(entry.guid)
            entries.append(entry)
            warnings.extend(f"entry {index + 1}: {note}" for note in entry.notes)
    return tuple(entries), warnings
