"""Numbers as the staff read them: Dutch digit grouping ("1.234")."""

from __future__ import annotations

from babel.numbers import format_decimal


def dutch_number(value: int) -> str:
    """1234 as "1.234"."""
    return str(format_decimal(value, locale="nl"))
