"""The staff's introduction for the text part: plain words, links spelled out, short lines."""

from __future__ import annotations

import re
import textwrap

from newsletter.content.sanitize import html_to_text
from newsletter.core.templating import TEXT_WIDTH

# What starts a line of html_to_text: quote marks, then a list item's bullet or number.
_LINE_PREFIX = re.compile(r"^((?:> )*)((?:\s*)(?:- |\d{1,9}\. )?)")


# A greeting opens the introduction: a greeting word, a few more words, then "," or "!"
# ("Beste lezer,", "Hallo allemaal!", "Lieve ouders en jongeren,").
_GREETING = re.compile(
    r"(?:beste|hallo|hoi|hey|hi|dag|goedemorgen|goedemiddag|goedenavond|lieve|geachte)"
    r"\b[^.?!,\n]{0,40}[,!]",
    re.IGNORECASE,
)


def intro_greets(intro_text: str) -> bool:
    """Whether the staff's introduction (as plain text) opens with a greeting of its own.

    Then the mail leaves out its own "Beste …," so the reader is greeted once.
    """
    return _GREETING.match(intro_text.lstrip()) is not None


def intro_text(intro_html: str, *, width: int = TEXT_WIDTH) -> str:
    """The introduction (safe HTML, as the HTML part shows it) as readable plain text.

    Emphasis and headings become plain words, lists keep their bullets and numbers,
    quotes their "> ", and a link reads "tekst (url)". Lines are wrapped at `width`
    columns, only at spaces: a URL or an e-mail address is never split (a longer one
    gets a line of its own).
    """
    paragraphs = html_to_text(intro_html, spell_out_links=True).split("\n\n")
    return "\n\n".join(_wrap_paragraph(paragraph, width) for paragraph in paragraphs if paragraph)


def _wrap_paragraph(paragraph: str, width: int) -> str:
    lines: list[str] = []
    for line in paragraph.split("\n"):
        match = _LINE_PREFIX.match(line)
        quote, marker = (match.group(1), match.group(2)) if match else ("", "")
        lines.extend(
            textwrap.wrap(
                line[len(quote) + len(marker) :],
                width=width,
                initial_indent=quote + marker,
                subsequent_indent=quote + " " * len(marker),
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [line]
        )
    return "\n".join(lines)
