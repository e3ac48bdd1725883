"""The schedule in words a reader understands: "elke dinsdag om 09:00", not `0 9 * * tue`.

Pure: a crontab line in, Dutch words out. Only the shapes a newsletter's schedule takes
are put into words (a time of day on some weekdays, every day, or one day of the month);
anything else is said honestly as "op vaste momenten".
"""

from __future__ import annotations

import re

from babel.dates import get_day_names

_DAY_NUMBERS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_NUMBER = re.compile(r"\d{1,2}")
# Cron counts Sunday as 0 (and 7); Babel counts Monday as 0.
_DAY_NAMES = get_day_names("wide", locale="nl")
IRREGULAR = "op vaste momenten"


def describe_schedule(cron: str) -> str:
    """E.g. "elke dinsdag om 09:00", "elke dag om 07:30", "elke maand op de 1e om 09:00"."""
    fields = cron.split()
    if len(fields) != 5:
        return IRREGULAR
    minute, hour, day_of_month, month, day_of_week = fields
    if not (_NUMBER.fullmatch(minute) and _NUMBER.fullmatch(hour)) or month != "*":
        return IRREGULAR
    at = f"om {int(hour):02d}:{int(minute):02d}"
    if day_of_month == "*" and day_of_week == "*":
        return f"elke dag {at}"
    if day_of_week == "*" and _NUMBER.fullmatch(day_of_month):
        return f"elke maand op de {int(day_of_month)}e {at}"
    days = _weekdays(day_of_week) if day_of_month == "*" else None
    if not days:
        return IRREGULAR
    if days == [1, 2, 3, 4, 5]:
        return f"elke werkdag {at}"
    names = [_DAY_NAMES[(day - 1) % 7] for day in days]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " en " + names[-1]
    return f"elke {listed} {at}"


def _weekdays(field: str) -> list[int] | None:
    """Cron day numbers (Monday first, Sunday last) of a day-of-week field, or None."""
    days: set[int] = set()
    for part in field.lower().split(","):
        first, dash, last = part.partition("-")
        start, end = _day(first), _day(last) if dash else _day(first)
        if start is None or end is None or end < start:
            return None
        days.update(range(start, end + 1))
    # Monday (1) first, Sunday (0 or 7) last, as a Dutch week runs.
    return sorted({7 if day == 0 else day for day in days})


def _day(value: str) -> int | None:
    if value in _DAY_NUMBERS:
        return _DAY_NUMBERS[value]
    if _NUMBER.fullmatch(value) and int(value) <= 7:
        return int(value)
    return None
