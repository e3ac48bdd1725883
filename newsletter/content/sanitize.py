"""Untrusted feed HTML made safe for mail, and turned into plain text and excerpts."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import nh3

from newsletter.content.nesting import MAX_DEPTH, bounded_nesting

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "a", "strong", "em", "b", "i", "u", "ul", "ol", "li", "blockquote",
        "h2", "h3", "h4", "img", "figure", "figcaption", "hr", "code", "pre", "sup", "sub",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt", "width", "height"}),
}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})
# Tags whose content is never reader text: dropped with everything inside them.
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "iframe", "object", "embed", "noscript", "template", "svg",
        "math", "form", "select", "textarea", "button", "frameset", "head", "title",
    }
)  # fmt: skip

# The mail has its own h1 (the edition) and article titles; content headings move under
# them rather than being flattened to text, so a long article keeps its structure.
_HEADING_RENAMES = {"1": "2", "5": "4", "6": "4"}
_HEADING_TAG = re.compile(r"<(/?)h([156])\b", re.IGNORECASE)
_DIMENSION = re.compile(r"[0-9]{1,4}")
# nh3 writes every attribute as name="value" with quotes inside values escaped, so an
# image tag in its output matches this exactly.
_IMAGE_TAG = re.compile(r'<img(?:\s+[\w-]+="[^"]*")*\s*/?>')
_IMAGE_ALT = re.compile(r'\salt="([^"]*)"')


def _absolute_url(value: str, *, base_url: str | None, schemes: frozenset[str]) -> str | None:
    """`value` resolved against `base_url`, or None when it is not a URL we may link to."""
    try:
        resolved = urljoin(base_url, value.strip()) if base_url else value.strip()
        scheme = urlsplit(resolved).scheme.lower()
    except ValueError:  # such as an unbalanced "[" in an IPv6 host
        return None
    # A relative URL that could not be resolved has no scheme: it would go nowhere in a mail.
    return resolved if scheme in schemes else None


def clean_html(
    html_text: str,
    *,
    base_url: str | None,
    image_hosts: frozenset[str] | None = None,
    notes: list[str] | None = None,
) -> str:
    """Safe HTML from untrusted `html_text`: allowed tags only, absolute http(s) URLs.

    Relative links and image sources are resolved against `base_url` and dropped when
    they cannot be; links get rel="noopener noreferrer". Scripts, styles, frames, forms
    and their contents are removed; so are event handlers and style attributes. With
    `image_hosts`, an image from any other host is dropped too, and every dropped
    image leaves its description (alt) as text. HTML nested deeper than
    nesting.MAX_DEPTH is flattened below that, with a line saying so added to `notes`.
    """

    def filter_attribute(tag: str, attribute: str, value: str) -> str | None:
        # nh3 reports an exception raised here on sys.unraisablehook, so this never raises.
        if tag == "a" and attribute == "href":
            return _absolute_url(value, base_url=base_url, schemes=LINK_SCHEMES)
        if tag == "img" and attribute == "src":
            source = _absolute_url(value, base_url=base_url, schemes=IMAGE_SCHEMES)
            if source is None or image_hosts is None:
                return source
            return source if _host(source) in image_hosts else None
        if tag == "img" and attribute in ("width", "height"):
            return value.strip() if _DIMENSION.fullmatch(value.strip()) else None
        return value

    # nh3's parser is quadratic in nesting depth: HTML that could nest deeply is rebuilt
    # with nesting.MAX_DEPTH levels at most.
    bounded, flattened = bounded_nesting(html_text)
    if flattened and notes is not None:
        notes.append(f"its HTML nests deeper than {MAX_DEPTH} levels; flattened below that")
    renamed = _HEADING_TAG.sub(lambda m: f"<{m[1]}h{_HEADING_RENAMES[m[2]]}", bounded)
    cleaned = nh3.clean(
        renamed,
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=filter_attribute,
        url_schemes=LINK_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    # An image whose source was dropped would show as a broken-image box in the mail.
    if image_hosts is None:
        return _IMAGE_TAG.sub(lambda m: m[0] if ' src="' in m[0] else "", cleaned).strip()
    return _IMAGE_TAG.sub(_image_or_description, cleaned).strip()


def _image_or_description(match: re.Match[str]) -> str:
    """The image tag when it kept a source; else its alt text (escaped as it is in the
    attribute, which is as safe in text)."""
    if ' src="' in match[0]:
        return match[0]
    description = _IMAGE_ALT.search(match[0])
    return description[1] if description else ""


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def plain_text_to_html(text: str) -> str:
    """HTML for plain text: blank lines separate paragraphs, single newlines become <br>."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = re.split(r"\n[ \t]*\n", normalized)
    rendered = []
    for paragraph in paragraphs:
        lines = [line.strip() for line in paragraph.strip().split("\n")]
        if any(lines):
            rendered.append("<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>")
    return "\n".join(rendered)


_BLOCK_TAGS = frozenset(
    {
        "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figure",
        "figcaption", "hr", "table", "tr", "section", "article", "header", "footer",
        "address", "dl", "dt", "dd", "details", "summary", "main", "aside", "nav",
    }
)  # fmt: skip
_SKIPPED_TAGS = frozenset(
    {"script", "style", "head", "title", "template", "noscript", "svg", "math", "iframe"}
)


class _TextExtractor(HTMLParser):
    """Collects readable text: paragraphs, list items as "- " lines, quotes with "> ".

    With `spell_out_links`, a link's address follows its text in brackets, "tekst (url)",
    unless the text already is that address.
    """

    def __init__(self, *, spell_out_links: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self._spell_out_links = spell_out_links
        # Per open <a>: the address to spell out (None: none), and where its text starts.
        self._links: list[tuple[str | None, int, int]] = []
        self.paragraphs: list[str] = []
        self._lines: list[str] = []
        self._words: list[str] = []
        self._prefix = ""
        self._skip_depth = 0
        self._pre_depth = 0
        self._quote_depth = 0
        self._lists: list[list[int]] = []  # per open list: [next number], or [] when bulleted

    def _end_line(self) -> None:
        text = "".join(self._words)
        self._words = []
        if self._pre_depth == 0:
            text = " ".join(text.split())
        if not text.strip():
            return
        indent = "  " * max(len(self._lists) - 1, 0)
        quote = "> " * self._quote_depth
        self._lines.append(quote + indent + self._prefix + text)
        self._prefix = ""

    def _end_paragraph(self) -> None:
        self._end_line()
        if self._lines:
            self.paragraphs.append("\n".join(self._lines))
            self._lines = []

    def _end_block(self) -> None:
        # Inside a list a block only starts a new line, so an item stays with its list.
        if self._lists:
            self._end_line()
        else:
            self._end_paragraph()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag == "br":
            self._end_line()
        elif tag in ("ul", "ol"):
            self._end_block()
            self._lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            self._end_line()
            numbering = self._lists[-1] if self._lists else []
            if numbering:
                self._prefix = f"{numbering[0]}. "
                numbering[0] += 1
            else:
                self._prefix = "- "
        elif tag == "pre":
            self._end_paragraph()
            self._pre_depth += 1
        elif tag in _BLOCK_TAGS:
            self._end_block()
            if tag == "blockquote":
                self._quote_depth += 1
        elif tag == "a" and self._spell_out_links:
            href = dict(attrs).get("href")
            self._links.append((_spelled_address(href), len(self._lines), len(self._words)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> and <hr/> are breaks; a self-closed <script/> has nothing to skip.
        if tag not in _SKIPPED_TAGS:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(self._skip_depth - 1, 0)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._end_block()
        elif tag == "li":
            self._end_line()
        elif tag == "pre":
            self._end_pre()
        elif tag in _BLOCK_TAGS:
            self._end_block()
            if tag == "blockquote":
                self._quote_depth = max(self._quote_depth - 1, 0)
        elif tag == "a" and self._links:
            self._spell_out(*self._links.pop())

    def _spell_out(self, address: str | None, line: int, word: int) -> None:
        if address is None or self._skip_depth:
            return
        # The link's text, when it is still on the line being collected.
        text = "".join(self._words[word:]) if line == len(self._lines) else ""
        if " ".join(text.split()) != address:
            self._words.append(f" ({address})")

    def _end_pre(self) -> None:
        text = "".join(self._words).strip("\n")
        self._words = []
        self._pre_depth = max(self._pre_depth - 1, 0)
        if text.strip():
            self.paragraphs.append(text)

    def handle_data(self, data: str) -> None:
        if self._skip_depth == 0:
            self._words.append(data)

    def close(self) -> None:
        super().close()
        if self._pre_depth:
            self._end_pre()
        self._end_paragraph()


def _spelled_address(href: str | None) -> str | None:
    """How a plain-text reader sees where a link goes: the URL, or a mailto: link's address."""
    if not href:
        return None
    address = " ".join(href.split())
    scheme = urlsplit(address).scheme.lower() if ":" in address else ""
    if scheme == "mailto":
        return address[len("mailto:") :] or None
    return address if scheme in ("http", "https") else None


def html_to_text(html_text: str, *, spell_out_links: bool = False) -> str:
    """Readable plain text: paragraphs separated by a blank line, no tags, entities decoded.

    With `spell_out_links`, every link reads "tekst (url)" (a mail address for mailto:),
    or only its URL when that is its text.
    """
    extractor = _TextExtractor(spell_out_links=spell_out_links)
    extractor.feed(html_text)
    extractor.close()
    return "\n\n".join(extractor.paragraphs)


# WordPress ends a cut description with "[…]" (or "[...]"); it says "more follows".
_WORDPRESS_MORE = re.compile(r"\s*\[(?:…|\.\.\.)\]\s*$")
_TRAILING_PUNCTUATION = ",;:-–—…. "


def excerpt(html_text: str, *, words: int) -> str:
    """About `words` words of plain text, cut at a word boundary and ending in "…" if cut."""
    if words < 1:
        raise ValueError("an excerpt needs at least one word")
    text = " ".join(html_to_text(html_text).split())
    was_cut = bool(_WORDPRESS_MORE.search(text))
    text = _WORDPRESS_MORE.sub("", text)
    all_words = text.split(" ")
    if len(all_words) > words:
        text = " ".join(all_words[:words])
        was_cut = True
    if not was_cut or not text:
        return text
    return text.rstrip(_TRAILING_PUNCTUATION) + "…"
