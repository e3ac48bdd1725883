"""HTML nested too deep, flattened before the sanitizer parses it.

The HTML5 tree builder in nh3 looks down the stack of open elements for every block it
opens, so its time grows with the square of the nesting depth: `<ul><li>` nested 20,000
deep costs seconds, and a feed full of it minutes. Every element HTML5 opens starts with
"<" and a letter, so HTML with at most `REBUILD_ABOVE_TAGS` of those cannot nest deeper
than that (give or take the rows and bodies a table adds), and costs nh3 little: it is
left as it is. Longer HTML is rebuilt here, in one linear pass, into well-formed HTML
whose elements nest `MAX_DEPTH` deep at most (deeper tags are dropped, their text kept).
The rebuilt HTML still goes through nh3, which alone decides what is safe; this pass only
decides how deep things may nest.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from html.parser import HTMLParser

MAX_DEPTH = 100
REBUILD_ABOVE_TAGS = 1000
# How far down the stack one tag may look: a stack deeper than this is being flattened
# anyway, and an unbounded look would make this pass quadratic too.
_LOOK_DOWN = 2 * MAX_DEPTH
_START_TAG = re.compile(r"<[a-zA-Z]")

_VOID = frozenset(
    {
        "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img",
        "input", "keygen", "link", "meta", "param", "source", "track", "wbr",
    }
)  # fmt: skip
# Elements whose content is never reader text: nh3 drops them with their content, and
# here they are dropped too, so the rebuilt HTML has no raw text or foreign content.
_DROPPED = frozenset(
    {
        "script", "style", "iframe", "object", "embed", "noscript", "template", "svg",
        "math", "form", "select", "textarea", "button", "frameset", "head", "title",
        "xmp", "noembed", "noframes", "plaintext",
    }
)  # fmt: skip
# Start tags that close an open <p> (HTML5's "close a p element").
_CLOSES_P = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir",
        "div", "dl", "fieldset", "figcaption", "figure", "footer", "header", "hgroup",
        "main", "menu", "nav", "ol", "p", "search", "section", "summary", "ul", "h1", "h2",
        "h3", "h4", "h5", "h6", "pre", "listing", "table", "hr", "li", "dd", "dt",
    }
)  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SCOPE = frozenset({"applet", "caption", "html", "table", "td", "th", "marquee", "object"})
# HTML5's special elements: an end tag for another element does not close past them.
_SPECIAL = _SCOPE | _CLOSES_P | frozenset(
    {
        "area", "base", "basefont", "bgsound", "body", "br", "button", "col", "colgroup",
        "embed", "frame", "frameset", "head", "iframe", "img", "input", "keygen", "link",
        "meta", "noembed", "noframes", "noscript", "param", "plaintext", "script",
        "select", "source", "style", "tbody", "template", "textarea", "tfoot", "thead",
        "title", "tr", "track", "wbr", "xmp",
    }
)  # fmt: skip
_FORMATTING = frozenset(
    {"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong",
     "tt", "u"}
)  # fmt: skip
# An open list item closes at a new one unless a special element other than these
# stands between them (the HTML parsing algorithm's "li" and "dd"/"dt" steps).
_LIST_ITEM_BOUNDARIES = _SPECIAL - {"address", "div", "p"}
_LI = frozenset({"li"})
_DD_DT = frozenset({"dd", "dt"})


_TABLE = frozenset({"table", "html"})
_SECTIONS = frozenset({"tbody", "thead", "tfoot"})
# Start tags that close an open element of their kind first, as HTML5 does: per tag,
# the names it closes and where the look for them stops.
_IMPLIED_CLOSES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "td": (frozenset({"td", "th"}), _TABLE | {"tr"}),
    "th": (frozenset({"td", "th"}), _TABLE | {"tr"}),
    "tr": (frozenset({"tr"}), _TABLE | _SECTIONS),
    "tbody": (_SECTIONS, _TABLE),
    "thead": (_SECTIONS, _TABLE),
    "tfoot": (_SECTIONS, _TABLE),
    # A link inside a link ends the first (HTML5 does, when no block came between).
    "a": (frozenset({"a"}), _SPECIAL),
    "nobr": (frozenset({"nobr"}), _SPECIAL),
}


class _Flattener(HTMLParser):
    """Rebuilds HTML as a tree of at most MAX_DEPTH levels, closing every element itself."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # Open elements: (name, attributes, written); those past MAX_DEPTH are tracked,
        # not written.
        self._stack: list[tuple[str, list[tuple[str, str | None]], bool]] = []
        self._open: Counter[str] = Counter()  # how many of each name are open
        self._written = 0  # how many of the open elements were written
        self._dropping = 0  # depth inside a dropped-with-content element
        self.parts: list[str] = []
        self.flattened = False

    # -- the stack ------------------------------------------------------------------

    def _push(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        written = self._written < MAX_DEPTH
        if written:
            self.parts.append(_start_tag(tag, attrs))
            self._written += 1
        else:
            self.flattened = True
        self._stack.append((tag, attrs, written))
        self._open[tag] += 1

    def _pop(self) -> None:
        tag, _, written = self._stack.pop()
        self._open[tag] -= 1
        if written:
            self.parts.append(f"</{tag}>")
            self._written -= 1

    def _pop_through(self, index: int) -> None:
        while len(self._stack) > index:
            self._pop()

    def _find(self, tag: str, boundaries: frozenset[str]) -> int | None:
        """Where `tag` is open above any of `boundaries`, looking a bounded way down."""
        if not self._open[tag]:
            return None
        low = max(len(self._stack) - _LOOK_DOWN, 0)
        for index in range(len(self._stack) - 1, low - 1, -1):
            name = self._stack[index][0]
            if name == tag:
                return index
            if name in boundaries:
                return None
        return None

    # -- tags -----------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._dropping or tag in _DROPPED:
            if tag in _DROPPED and tag not in _VOID:
                self._dropping += 1
            return
        if tag in _VOID:
            if self._written < MAX_DEPTH:
                self.parts.append(_start_tag(tag, attrs))
            return
        if tag in ("li", "dd", "dt"):
            self._close_any(_LI if tag == "li" else _DD_DT, _LIST_ITEM_BOUNDARIES)
        elif tag in _IMPLIED_CLOSES:
            names, boundary = _IMPLIED_CLOSES[tag]
            self._close_any(names, boundary)
        if tag in _CLOSES_P:
            self._close_p()
        if tag in _HEADINGS and self._stack and self._stack[-1][0] in _HEADINGS:
            self._pop()
        self._push(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # HTML ignores the slash of <div/>: it opens the element like any start tag.
        self.handle_starttag(tag, attrs)

    def _close_any(self, names: frozenset[str], boundaries: frozenset[str]) -> None:
        if not any(self._open[name] for name in names):
            return
        low = max(len(self._stack) - _LOOK_DOWN, 0)
        for index in range(len(self._stack) - 1, low - 1, -1):
            name = self._stack[index][0]
            if name in names:
                self._pop_through(index)
                return
            if name in boundaries:
                return

    def _close_p(self) -> None:
        index = self._find("p", _SCOPE | {"button"})
        if index is not None:
            self._pop_through(index)

    def handle_endtag(self, tag: str) -> None:
        if self._dropping:
            if tag in _DROPPED:
                self._dropping -= 1
            return
        if tag == "li":
            index = self._find("li", _SCOPE | {"ol", "ul"})
        elif tag == "p":
            index = self._find("p", _SCOPE | {"button"})
        elif tag in _HEADINGS:
            index = self._find_heading()
        elif tag in _FORMATTING:
            self._close_formatting(tag)
            return
        elif tag in _SPECIAL:
            index = self._find(tag, _SCOPE - {tag})
        else:
            index = self._find(tag, _SPECIAL)
        if index is not None:
            self._pop_through(index)

    def _close_formatting(self, tag: str) -> None:
        """End `tag` (bold, a link, ...); the blocks opened inside it go on without it.

        HTML5 lets `<b>x<p>y</b>z</p>` end the bold and keep the paragraph open; written
        well-formed, that is the elements above it closed, it closed, and they reopened.
        """
        index = self._find(tag, _SCOPE)
        if index is None:
            return
        reopened = [entry for entry in self._stack[index + 1 :] if entry[0] != tag]
        self._pop_through(index)
        for name, attrs, _ in reopened:
            self._push(name, attrs)

    def _find_heading(self) -> int | None:
        if not any(self._open[name] for name in _HEADINGS):
            return None
        low = max(len(self._stack) - _LOOK_DOWN, 0)
        for index in range(len(self._stack) - 1, low - 1, -1):
            name = self._stack[index][0]
            if name in _HEADINGS:
                return index
            if name in _SCOPE:
                return None
        return None

    # -- text -----------------------------------------------------------------------

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self.parts.append(html.escape(data, quote=False))

    def close(self) -> None:
        super().close()
        self._pop_through(0)


def _start_tag(tag: str, attrs: list[tuple[str, str | None]]) -> str:
    written = "".join(
        f' {name}="{html.escape(value or "", quote=True)}"'
        for name, value in attrs
        if _ATTRIBUTE_NAME.fullmatch(name)
    )
    return f"<{tag}{written}>"


_ATTRIBUTE_NAME = re.compile(r"[a-zA-Z_:][-a-zA-Z0-9_:.]*")


def could_nest_deeply(html_text: str) -> bool:
    """True when `html_text` has more than REBUILD_ABOVE_TAGS possible start tags."""
    return len(_START_TAG.findall(html_text)) > REBUILD_ABOVE_TAGS


def bounded_nesting(html_text: str) -> tuple[str, bool]:
    """`html_text` rebuilt with elements nested MAX_DEPTH deep at most, and whether
    anything was flattened; unchanged when it has too few tags to nest deeply."""
    if not could_nest_deeply(html_text):
        return html_text, False
    flattener = _Flattener()
    flattener.feed(html_text)
    flattener.close()
    return "".join(flattener.parts), flattener.flattened
