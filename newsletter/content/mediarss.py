"""A second, plain XML pass over Media RSS feeds, for what feedparser loses.

feedparser files media:title and media:description under the entry's own title, summary
or content, and keeps no alt text for images. This pass tells which elements are an
item's own, and what its images are described as.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass

from newsletter.content.sanitize import html_to_text
from newsletter.core.text import one_line, shorten

MEDIA_NAMESPACE = "http://search.yahoo.com/mrss/"
# Length of the articles table's image_alt column (models.Article).
MAX_ALT_CHARS = 500


@dataclass(frozen=True)
class ItemFacts:
    """What feedparser hides about one item: its own elements, and its media's text."""

    own_elements: frozenset[str]
    own_texts: Mapping[str, str]  # an RSS item's description and content:encoded
    image_alts: Mapping[str, str]
    has_media_text: bool


def _local_name(tag: str) -> tuple[str, str]:
    namespace, _, local = tag.rpartition("}")
    return namespace.lstrip("{"), local


def _media_text(element: ElementTree.Element) -> str | None:
    """The text of a media:description or media:title child, the former first."""
    for name in ("description", "title"):
        child = element.find(f"{{{MEDIA_NAMESPACE}}}{name}")
        if child is not None and child.text and child.text.strip():
            text = child.text
            if child.get("type") == "html":
                text = html_to_text(text)
            return shorten(one_line(text), MAX_ALT_CHARS) or None
    return None


def _image_alts(item: ElementTree.Element) -> dict[str, str]:
    # Media RSS lets a description on the group or the item stand for its contents.
    alts: dict[str, str] = {}
    media_tags = (f"{{{MEDIA_NAMESPACE}}}content", f"{{{MEDIA_NAMESPACE}}}thumbnail")
    item_text = _media_text(item)
    for group in [item, *item.iter(f"{{{MEDIA_NAMESPACE}}}group")]:
        group_text = _media_text(group) or item_text
        for child in group:
            url = (child.get("url") or "").strip()
            if child.tag in media_tags and url and url not in alts:
                text = _media_text(child) or group_text
                if text:
                    alts[url] = text
    return alts


def scan_items(body: bytes) -> list[ItemFacts] | None:
    """Per item, facts from a second, plain XML parse; None when it cannot be made.

    feedparser files media:title and media:description under the entry's own title,
    summary or content, and keeps no alt text for images; this pass tells which
    elements are the item's own, and what its images are described as.
    """
    try:
        # Safe from entity expansion: entity declarations were refused before this.
        root = ElementTree.fromstring(body)  # noqa: S314
    except (ElementTree.ParseError, ValueError, LookupError):
        return None
    media_texts = (f".//{{{MEDIA_NAMESPACE}}}title", f".//{{{MEDIA_NAMESPACE}}}description")
    facts = []
    for element in root.iter():
        namespace, local = _local_name(element.tag)
        if local not in ("item", "entry") or namespace == MEDIA_NAMESPACE:
            continue
        own: dict[str, str] = {}
        for child in element:
            child_namespace, child_local = _local_name(child.tag)
            if child_namespace != MEDIA_NAMESPACE:
                own.setdefault(child_local, child.text or "")
        facts.append(
            ItemFacts(
                own_elements=frozenset(own),
                own_texts={name: own[name] for name in ("description", "encoded") if name in own},
                image_alts=_image_alts(element),
                has_media_text=any(element.find(path) is not None for path in media_texts),
            )
        )
    return facts
