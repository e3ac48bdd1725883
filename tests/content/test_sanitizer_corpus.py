"""feedparser's own sanitizer test cases, through our parser and sanitizer.

The cases (tests/fixtures/feedparser-sanitize/, see NOTE.md there) each hide one attack
in an entry's HTML. What we store must keep only our allowed tags and attributes, links
to http(s) or mailto, images from http(s), and no comments.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter.content.feeds import parse_feed
from newsletter.content.sanitize import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    IMAGE_SCHEMES,
    LINK_SCHEMES,
)
from newsletter.core.errors import FeedParseError
from tests.support.paths import TESTS_DIR

CORPUS = TESTS_DIR / "fixtures" / "feedparser-sanitize"
CASES = sorted(CORPUS.glob("*.xml"))


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
            return
        allowed = ALLOWED_ATTRIBUTES.get(tag, frozenset()) | ({"rel"} if tag == "a" else set())
        for name, value in attrs:
            if name not in allowed:
                self.problems.append(f"attribute {name} on <{tag}>")
            elif name in ("href", "src"):
                schemes = LINK_SCHEMES if name == "href" else IMAGE_SCHEMES
                if urlsplit(value or "").scheme.lower() not in schemes:
                    self.problems.append(f"{name}={value!r}")

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data!r}")


def problems_in(html: str) -> list[str]:
    markup = _Markup()
    markup.feed(html)
    markup.close()
    return markup.problems


def test_the_corpus_is_there() -> None:
    assert len(CASES) > 200


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_feedparser_sanitizer_case_stays_safe(case: Path) -> None:
    try:
        parsed = parse_feed(case.read_bytes(), url="https://feeds.example.org/feed/")
    except FeedParseError:
        return  # nothing stored is safe too
    for entry in parsed.entries:
        for html in (entry.summary_html, entry.content_html):
            assert problems_in(html) == [], html
        assert entry.link is None or urlsplit(entry.link).scheme in ("http", "https")
