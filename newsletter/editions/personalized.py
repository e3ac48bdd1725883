"""A composed mail cut at its per-reader slots, and the values that fill them per reader."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

from newsletter.core.errors import CompositionError
from newsletter.core.text import bare, one_line

# The per-reader values, in the names Personalizable.slots and fill() use.
SLOT_NAMES = ("name", "email", "unsubscribe_url", "preferences_url")
# A name longer than this is cut: it keeps text lines far below the 998-octet limit.
NAME_MAX_CHARS = 100


@dataclass(frozen=True)
class RecipientValues:
    """What differs per reader, as plain (unescaped) text."""

    email: str
    name: str | None
    unsubscribe_url: str
    preferences_url: str


@dataclass(frozen=True)
class Personalizable:
    """A finished document cut at its per-reader slots: parts[0] slot[0] parts[1] ..."""

    parts: tuple[str, ...]
    slots: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.parts) != len(self.slots) + 1:
            raise ValueError("a Personalizable needs exactly one more part than slots")

    def fill(self, values: Mapping[str, str]) -> str:
        """The document with each slot replaced by `values[slot]`, which must be escaped
        for its context already (see ComposedMail.html_values and text_values)."""
        # Per reader this is only a join: Jinja, MJML and premailer ran once per edition
        # and theme set, so a send to 100,000 readers does no rendering at all.
        pieces = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            pieces.append(values[slot])
            pieces.append(part)
        return "".join(pieces)


def html_escaped(text_values: Mapping[str, str]) -> dict[str, str]:
    """The HTML part's slot values from the text part's: the same, escaped for text and
    attribute values."""
    return {slot: html.escape(value, quote=True) for slot, value in text_values.items()}


@dataclass(frozen=True)
class ComposedMail:
    """An edition rendered for one set of themes, ready to be filled in per reader."""

    subject: str
    html: Personalizable
    text: Personalizable
    article_count: int
    themes: frozenset[str] | None
    # Shown where a reader's name is unknown; it comes from email/strings.j2.
    name_fallback: str

    def html_values(self, recipient: RecipientValues) -> dict[str, str]:
        """The slot values for the HTML part, escaped for text and attribute values."""
        return html_escaped(self.text_values(recipient))

    def text_values(self, recipient: RecipientValues) -> dict[str, str]:
        """The slot values for the text part: single lines without control characters."""
        return {
            "name": _display_name(recipient.name, self.name_fallback),
            "email": one_line(recipient.email),
            "unsubscribe_url": bare(recipient.unsubscribe_url),
            "preferences_url": bare(recipient.preferences_url),
        }

    def html_for(self, recipient: RecipientValues) -> str:
        return self.html.fill(self.html_values(recipient))

    def text_for(self, recipient: RecipientValues) -> str:
        return self.text.fill(self.text_values(recipient))


def _display_name(name: str | None, fallback: str) -> str:
    cleaned = one_line(name or "")[:NAME_MAX_CHARS].strip()
    return cleaned or fallback


def slot_markers(nonce: str) -> dict[str, str]:
    """What a template renders in place of each reader's value, by slot name."""
    return {slot: f"slot-{nonce}-{slot.replace('_', '-')}" for slot in SLOT_NAMES}


def split_at_slots(
    document: str, markers: Mapping[str, str], nonce: str, *, template_name: str
) -> Personalizable:
    """`document`, rendered with the `markers` of `nonce`, cut where each one stands.

    Raises CompositionError when a filter altered a marker, or when the document has no
    unsubscribe link.
    """
    # Splitting here, once per composition, is what makes per-reader work a plain join
    # in Personalizable.fill.
    marker_pattern = re.compile(
        "(" + "|".join(re.escape(marker) for marker in markers.values()) + ")"
    )
    slot_of_marker = {marker: slot for slot, marker in markers.items()}
    pieces = marker_pattern.split(document)
    parts = tuple(pieces[0::2])
    slots = tuple(slot_of_marker[marker] for marker in pieces[1::2])
    # A leftover nonce (in any case) means a filter such as |upper altered a marker.
    if any(nonce in part.lower() for part in parts):
        raise CompositionError(
            f"template {template_name}: a reader's value was changed by a filter; "
            "use recipient.* as it is"
        )
    if "unsubscribe_url" not in slots:
        raise CompositionError(
            f"template {template_name}: the mail must contain recipient.unsubscribe_url"
        )
    return Personalizable(parts=parts, slots=slots)
