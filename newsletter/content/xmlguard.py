"""Refusing XML that declares entities, before any parser sees it (billion laughs, XXE).

Feeds never need their own entities, so a document whose prolog declares one is refused
outright: that bounds the time and memory any parser can spend on it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

_ENTITY_DECLARATION = re.compile(r"<!ENTITY", re.IGNORECASE)


def _after_declaration_part(text: str, position: int) -> int:
    """Where scanning goes on after a `<!...` declaration: past its `>`, or into its `[`."""
    quote = ""
    for index in range(position, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in ">[":
            return index + 1
    return len(text)


def _root_element_start(text: str) -> int:
    """Where the root element starts: past comments, processing instructions and DOCTYPE."""
    position = 0
    while (start := text.find("<", position)) >= 0:
        if text.startswith("<!--", start):
            end = text.find("-->", start + 4)
            if end < 0:
                return len(text)
            position = end + 3
        elif text.startswith("<?", start):
            end = text.find("?>", start + 2)
            if end < 0:
                return len(text)
            position = end + 2
        elif text.startswith("<!", start):
            position = _after_declaration_part(text, start + 2)
        else:
            following = text[start + 1 : start + 2]
            if following.isascii() and (following.isalpha() or following == "_"):
                return start
            position = start + 1  # a stray "<" in text, which a parser would reject
    return len(text)


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    return match[1] if match else None


def _possible_texts(body: bytes, content_type: str | None) -> Iterator[str]:
    """The body as each encoding feedparser might read it in."""
    # Every ASCII-compatible encoding (UTF-8, Latin-1, windows-1252) has "<!ENTITY" in
    # the same bytes; UTF-16/32 and EBCDIC need decoding first.
    yield body.decode("latin-1")
    if b"\x00" in body[:4]:
        for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            yield body.decode(codec, errors="ignore")
    if body[:4] == b"\x4c\x6f\xa7\x94":  # "<?xm" in EBCDIC
        yield body.decode("cp037", errors="ignore")
    charset = _charset(content_type)
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            return
        yield body.decode(charset, errors="ignore")


def declares_entities(body: bytes, *, content_type: str | None = None) -> bool:
    """True when the document's prolog declares XML entities (billion laughs, XXE).

    The search covers everything before the root element without regard to comments
    or quotes, so it finds at least what the XML parser or feedparser would act on.
    """
    for text in _possible_texts(body, content_type):
        if _ENTITY_DECLARATION.search(text, 0, _root_element_start(text)):
            return True
    return False
