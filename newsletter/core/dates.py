"""Dates as readers see them: Dutch words, in the site's own time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_format_date

# "13 mei 2021": day without a leading zero, the month written out, the full year.
DATE_PATTERN = "d MMMM y"


def format_date(value: datetime, *, timezone: str, locale: str = "nl") -> str:
    """Format an aware datetime as a date in `timezone`, e.g. "13 mei 2021".

    The conversion comes first because a moment late in the UTC evening is already the
    next day in Amsterdam; a naive datetime is refused rather than guessed at.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}; dates must be timezone-aware")
    local = value.astimezone(ZoneInfo(timezone))
    return str(babel_format_date(local.date(), format=DATE_PATTERN, locale=locale))


def format_moment(value: datetime, *, timezone: str, locale: str = "nl") -> str:
    """A date with its time of day in `timezone`, e.g. "13 mei 2021, 09:00"."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}; dates must be timezone-aware")
    local = value.astimezone(ZoneInfo(timezone))
    return f"{format_date(local, timezone=timezone, locale=locale)}, {local:%H:%M}"
