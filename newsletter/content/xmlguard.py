"""Refusing XML that declares entities, before any parser sees it (billion laughs, XXE).

Feeds never need their own entities, so a document whose prolog declares one is refused
outright: that bounds the time and memory any parser can spend on it. The search reads
the document in every encoding a parser might: the bytes as they are, UTF-16/32 and
EBCDIC, the HTTP charset, the encoding the document declares, and the very text
feedparser hands its parsers. Encodings that can spell markup in other characters
(UTF-7: "+ADw-" is "<") are refused outright.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

import feedparser.encodings

_ENTITY_DECLARATION = re.compile(r"<!ENTITY", re.IGNORECASE)
# An XML declaration's encoding, as feedparser reads it (any quoted value).
_DECLARED_ENCODING = re.compile(r"<\?xml[^>]*?encoding\s*=\s*([\"'])(.*?)\1", re.IGNORECASE)
# Python codecs that write ASCII markup in other bytes, or decode escapes into it.
_HIDING_CODECS = frozenset(
    {"utf-7", "unicode-escape", "raw-unicode-escape", "punycode", "idna", "hz"}
)


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


def _codec_name(encoding: str) -> str | None:
    """Python's name for `encoding`, or None when Python has no text codec by that name."""
    try:
        info = codecs.lookup(encoding)
    except (LookupError, ValueError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


def _byte_level_texts(body: bytes) -> Iterator[str]:
    # Every ASCII-compatible encoding (UTF-8, Latin-1, windows-1252) has "<!ENTITY" in
    # the same bytes; UTF-16/32 and EBCDIC need decoding first.
    yield body.decode("latin-1")
    if b"\x00" in body[:4]:
        for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            yield body.decode(codec, errors="ignore")
    if body[:4] == b"\x4c\x6f\xa7\x94":  # "<?xm" in EBCDIC
        yield body.decode("cp037", errors="ignore")


def _named_encodings(body: bytes, content_type: str | None) -> list[str]:
    """The codecs the HTTP charset and the document's own declaration name."""
    names = [_charset(content_type) or ""]
    for text in _byte_level_texts(body[:1024]):
        names.extend(match[2] for match in _DECLARED_ENCODING.finditer(text))
    codecs_named = []
    for name in names:
        codec = _codec_name(name.strip()) if name.strip() else None
        if codec is not None and codec not in codecs_named:
            codecs_named.append(codec)
    return codecs_named


def _as_feedparser_reads_it(body: bytes, content_type: str | None) -> tuple[str, str | None]:
    """The text feedparser gives its parsers (it picks the encoding), and that encoding."""
    # The same content type feeds.py hands feedparser.
    headers = {"content-type": content_type or "application/xml"}
    result: dict[str, object] = {}
    data = feedparser.encodings.convert_to_utf8(headers, body, result)
    text = data.decode("utf-8", errors="ignore") if isinstance(data, bytes) else str(data)
    encoding = result.get("encoding")
    return text, _codec_name(encoding) if isinstance(encoding, str) and encoding else None


def hiding_encoding(body: bytes, *, content_type: str | None = None) -> str | None:
    """The encoding, named by the document or its charset or chosen by feedparser, that
    can write markup in other characters (UTF-7 and the like); None when there is none."""
    named = _named_encodings(body, content_type)
    _, chosen = _as_feedparser_reads_it(body, content_type)
    for codec in [*named, *([chosen] if chosen else [])]:
        if codec in _HIDING_CODECS:
            return codec
    return None


def _possible_texts(body: bytes, content_type: str | None) -> Iterator[str]:
    """The body as each encoding feedparser might read it in."""
    yield from _byte_level_texts(body)
    for codec in _named_encodings(body, content_type):
        yield body.decode(codec, errors="ignore")
    yield _as_feedparser_reads_it(body, content_type)[0]


def declares_entities(body: bytes, *, content_type: str | None = None) -> bool:
    """True when the document's prolog declares XML entities (billion laughs, XXE).

    The search covers everything before the root element without regard to comments
    or quotes, so it finds at least what the XML parser or feedparser would act on.
    """
    for text in _possible_texts(body, content_type):
        if _ENTITY_DECLARATION.search(text, 0, _root_element_start(text)):
            return True
    return False
