"""What importing a file would do, before anything is stored: new, there, suppressed, invalid."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.importing import ImportRow, RowProblem
from subscribers.models import SUPPRESSED_STATUSES, Subscriber, Suppression
from subscribers.records import Operation

# Rows looked up at once: far below SQLite's limit of variables per query.
PREVIEW_BATCH = 2000


@dataclass(frozen=True)
class PreviewLine:
    """One valid line of the file, as the preview lists it."""

    line: int
    email: str
    name: str | None
    themes: tuple[str, ...]


@dataclass
class ImportPreview:
    """The file's lines sorted by what importing would do with them.

    `new`: added (a confirmation mail, or confirmed); `already`: confirmed already, left
    as it is; `suppressed`: left, erased, bounced or complained, so not added (only their
    own opt-in brings them back); `problems`: not readable as a person.
    """

    new: list[ImportRow] = field(default_factory=list)
    already: list[ImportRow] = field(default_factory=list)
    suppressed: list[ImportRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    @staticmethod
    def line_of(row: ImportRow) -> PreviewLine:
        return PreviewLine(row.line, row.address.email, row.name, row.themes)


def preview_rows(
    session: Session, op: Operation, items: Iterable[ImportRow | RowProblem]
) -> ImportPreview:
    """Sort the rows of a file by what importing them would do; changes nothing.

    The rows are looked up `PREVIEW_BATCH` at a time: two queries per batch."""
    preview = ImportPreview()
    rows: list[ImportRow] = []
    for item in items:
        if isinstance(item, RowProblem):
            preview.problems.append(item)
            continue
        rows.append(item)
        if len(rows) >= PREVIEW_BATCH:
            _sort_rows(session, op, rows, preview)
            rows = []
    _sort_rows(session, op, rows, preview)
    return preview


def _sort_rows(
    session: Session, op: Operation, rows: list[ImportRow], preview: ImportPreview
) -> None:
    if not rows:
        return
    statuses = dict(
        session.execute(
            select(Subscriber.email_key, Subscriber.status).where(
                Subscriber.email_key.in_([row.address.key for row in rows])
            )
        ).all()
    )
    subjects = {row.address.key: op.address_hash(row.address.key) for row in rows}
    suppressed = set(
        session.scalars(
            select(Suppression.address_hash).where(
                Suppression.address_hash.in_(list(subjects.values()))
            )
        )
    )
    for row in rows:
        status = statuses.get(row.address.key)
        if status == "confirmed":
            preview.already.append(row)
        elif subjects[row.address.key] in suppressed or status in SUPPRESSED_STATUSES:
            preview.suppressed.append(row)
        else:
            preview.new.append(row)
