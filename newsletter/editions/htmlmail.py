"""Rendered templates made finished mail: MJML to HTML, CSS inlined, lines kept short."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

from mjml import mjml2html
from premailer import Premailer

from newsletter.core.errors import CompositionError

# RFC 5322: no line of a message may exceed 998 octets (plus CRLF).
MAX_LINE_OCTETS = 998

_EXTERNAL_RESOURCE_TAGS = ("link", "script", "iframe", "object", "embed", "base", "frame")


def finished_html(mjml_source: str, *, template_name: str, main_element: bool = False) -> str:
    """The mail's HTML from rendered MJML: inlined CSS, and nothing from elsewhere.

    Everything the body shows is one main landmark, so that a screen reader can jump to
    it and nothing is outside a landmark: a <main> element with `main_element` (a page
    on the web), else a <div role="main">, which every mail program keeps.
    Raises CompositionError, naming `template_name`, for invalid MJML or a document
    that would load anything from another host.
    """
    rendered = _with_main_landmark(_mjml_to_html(mjml_source, template_name), main_element)
    html_document = _break_lines(_inline_css(rendered))
    _refuse_external_resources(html_document, template_name)
    return html_document


def finished_text(text: str) -> str:
    """One newline style, no trailing blanks, and no line over the 998-octet limit."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        lines.extend(_limit_octets(line.rstrip()))
    return "\n".join(lines).strip("\n") + "\n"


def _mjml_to_html(mjml_source: str, template_name: str) -> str:
    try:
        # fonts={} stops MJML from adding its default Google Fonts links.
        return mjml2html(mjml_source, fonts={}, disable_comments=True)
    except Exception as exc:  # mrml raises plain exceptions for invalid MJML
        message = " ".join(str(exc).split())
        raise CompositionError(f"template {template_name}: invalid MJML: {message}") from exc


# MJML puts the whole body in one <div role="article">, labelled with the title.
_BODY_START = re.compile(r"<body\b[^>]*>")
_BODY_END = re.compile(r"</body>")


def _with_main_landmark(html_document: str, main_element: bool) -> str:
    """The body's content put in a main landmark.

    Around MJML's labelled article rather than inside it: axe-core counts a labelled
    element as content, which must be in a landmark too.
    """
    start = _BODY_START.search(html_document)
    ends = list(_BODY_END.finditer(html_document))
    if start is None or not ends or ends[-1].start() < start.end():
        return html_document  # not MJML's usual body: left as it is
    opening, closing = ("<main>", "</main>") if main_element else ('<div role="main">', "</div>")
    end = ends[-1].start()
    return (
        html_document[: start.end()]
        + opening
        + html_document[start.end() : end]
        + closing
        + html_document[end:]
    )


def _inline_css(html_document: str) -> str:
    """Copy the remaining <style> rules onto the elements, for clients that drop <style>."""
    inliner = Premailer(
        html_document,
        keep_style_tags=True,  # media queries for phones only work from a <style> block
        strip_important=False,
        allow_network=False,
        disable_validation=True,
        disable_link_rewrites=True,
        cssutils_logging_level=logging.CRITICAL,
    )
    inlined = str(inliner.transform(pretty_print=False))
    # premailer keeps a doctype only when it is spelled as lxml spells it ("<!DOCTYPE");
    # without one, browsers and webmail render the mail in quirks mode.
    if not inlined.lstrip()[:9].lower().startswith("<!doctype"):
        inlined = "<!DOCTYPE html>\n" + inlined
    return inlined


# Block tags, where a line break changes nothing a reader sees: tables ignore it, space
# at a block's edge collapses, and MJML sets font-size 0 around its columns.
_BLOCK_TAG_START = re.compile(
    r"(?<=>)(?=<(?:/?(?:table|tbody|tr|td|div|head|body)\b|(?:p|h[1-6]|ul|ol|li)\b|!--\[if))"
)


# A space before a link, outside <pre> (which mails never have): a newline there reads
# the same, and puts each link (often holding a per-reader URL) on a line of its own.
_SPACE_BEFORE_LINK = re.compile(r" (?=<a\s)")


def _break_lines(html_document: str) -> str:
    """Start block tags and links on new lines: reviewable golden files, and lines that
    stay far below the 998-octet limit once per-reader values are filled in."""
    return _SPACE_BEFORE_LINK.sub("\n", _BLOCK_TAG_START.sub("\n", html_document))


class _ResourceFinder(HTMLParser):
    """Notes the tags and the CSS of a document, to find anything that loads from elsewhere."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data.lower())


def _refuse_external_resources(html_document: str, template_name: str) -> None:
    """Fail rather than send a mail that would load anything from elsewhere."""
    finder = _ResourceFinder()
    finder.feed(html_document)
    finder.close()
    for tag in _EXTERNAL_RESOURCE_TAGS:
        if tag in finder.tags:
            raise CompositionError(f"template {template_name}: the mail may not contain <{tag}>")
    if any("@import" in css or "url(" in css for css in finder.css):
        raise CompositionError(
            f"template {template_name}: styles may not load anything (@import, url())"
        )


def _limit_octets(line: str) -> list[str]:
    """`line` cut into pieces of at most MAX_LINE_OCTETS UTF-8 octets (normally itself)."""
    pieces: list[str] = []
    while len(line.encode("utf-8")) > MAX_LINE_OCTETS:
        cut = MAX_LINE_OCTETS
        while len(line[:cut].encode("utf-8")) > MAX_LINE_OCTETS:
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces
