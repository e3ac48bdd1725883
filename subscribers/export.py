"""The list as a file a Dutch spreadsheet opens as it is: `;`, BOM, Dutch words, no formulas.

Excel in a Dutch locale splits lines on `;` and reads UTF-8 only when the file opens
with a byte order mark. Every cell goes through `spreadsheet_safe`: an address like
`=cmd|'/Ccalc'!A0@example.org` is valid, and without the quote it becomes a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator, Iterator, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from subscribers.models import Subscriber

BOM = "\ufeff"
DELIMITER = ";"
# What a spreadsheet takes as the start of a formula (tab and CR too, for some of them).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SPREADSHEET_HEADER = ("e-mail", "naam", "status", "thema's", "aangemeld", "bevestigd")
STATUS_WORDS = {
    "confirmed": "bevestigd",
    "pending": "wacht op bevestiging",
    "unsubscribed": "afgemeld",
    "bounced": "onbestelbaar",
    "complained": "klacht",
}
# Rows per piece of a streamed file: small pieces, few round trips.
CHUNK_ROWS = 500


def spreadsheet_safe(value: str) -> str:
    """`value` as a cell that spreadsheets show as text, never as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def local_moment(value: datetime | None, timezone: str) -> str:
    """dd-mm-jjjj uu:mm in the site's timezone; empty for no moment."""
    return value.astimezone(ZoneInfo(timezone)).strftime("%d-%m-%Y %H:%M") if value else ""


def spreadsheet_line(subscriber: Subscriber, settings: Settings) -> list[str]:
    """One subscriber as the cells of SPREADSHEET_HEADER, each made safe."""
    names = [
        settings.themes[slug].name if slug in settings.themes else slug
        for slug in subscriber.themes
    ]
    timezone = settings.site.timezone
    cells = [
        subscriber.email,
        subscriber.name or "",
        STATUS_WORDS.get(subscriber.status, subscriber.status),
        ", ".join(names),
        local_moment(subscriber.created_at, timezone),
        local_moment(subscriber.confirmed_at, timezone),
    ]
    return [spreadsheet_safe(cell) for cell in cells]


def spreadsheet_lines(
    session: Session, settings: Settings, *, status: str | None
) -> Iterator[list[str]]:
    """Every subscriber (or those in `status`), oldest first, as spreadsheet cells."""
    statement = select(Subscriber).order_by(Subscriber.created_at, Subscriber.id)
    if status is not None:
        statement = statement.where(Subscriber.status == status)
    for row in session.scalars(statement.execution_options(yield_per=500)):
        yield spreadsheet_line(row, settings)


def spreadsheet_pieces(
    lines: Iterator[list[str]], *, header: Sequence[str] = SPREADSHEET_HEADER
) -> Iterator[str]:
    """The BOM, the header and `lines` as `;`-separated text, a few hundred lines a piece.

    A download broken off closes `lines` at once, which ends its read transaction.
    """
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, delimiter=DELIMITER, lineterminator="\r\n")
    writer.writerow(header)
    try:
        for count, line in enumerate(lines, start=1):
            writer.writerow(line)
            if count % CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        if isinstance(lines, Generator):
            lines.close()
