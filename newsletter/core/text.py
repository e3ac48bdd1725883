"""Making untrusted text safe for one line of a mail: headers, slots, links."""

from __future__ import annotations

import re

# Control characters (CR, LF, NUL, ...) and the Unicode line and paragraph separators:
# none of them may reach a header or a per-reader value.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(value: str) -> str:
    """`value` without control characters or line breaks, its whitespace collapsed."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", value).split())


def bare(value: str) -> str:
    """`value` (a URL or address) with every control character and space taken out."""
    return "".join(CONTROL_CHARACTERS.sub("", value).split())


def shorten(value: str, limit: int) -> str:
    """`value` cut to at most `limit` characters, ending in "…" when it was cut."""
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"
