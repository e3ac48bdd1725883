"""What importing a file would do, before anything is stored: new, there, suppressed, invalid."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from subscribers.importing import ImportRow, RowProblem
from subscribers.models import SUPPRESSED_STATUSES
from subscribers.records import Operation, find_by_key, suppression_for


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
    """Sort the rows of a file by what importing them would do; changes nothing."""
    preview = ImportPreview()
    for item in items:
        if isinstance(item, RowProblem):
            preview.problems.append(item)
            continue
        subscriber = find_by_key(session, item.address.key)
        suppressed = suppression_for(session, op.address_hash(item.address.key)) is not None
        if subscriber is not None and subscriber.status == "confirmed":
            preview.already.append(item)
        elif suppressed or (subscriber is not None and subscriber.status in SUPPRESSED_STATUSES):
            preview.suppressed.append(item)
        else:
            preview.new.append(item)
    return preview
