"""Reading a CSV file of addresses into rows for staff's `add`, as spreadsheets save it.

The CLI's files (`email,name,themes`, UTF-8) and what a Dutch Excel writes both read:
`;` or `,` between cells (found from the header line), UTF-8 with or without a byte
order mark or else Windows-1252, Dutch or English column names in any case, themes by
name or slug separated by `,` or `;` inside their cell. A cell our own export protected
against formulas (a leading `'` before `=`, `+`, `-`, `@`) reads back as it was.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from newsletter.core.config import Settings
from newsletter.core.errors import ImportFileError, InvalidInput
from newsletter.mail.mailer import OutgoingMail
from subscribers.addresses import (
    Address,
    AddressNormalizer,
    describe_problems,
    validate_name,
)
from subscribers.export import FORMULA_STARTS

COLUMNS = ("email", "name", "themes")
# The names a column may carry in the header row, compared without case and spaces.
COLUMN_NAMES = {
    "email": "email",
    "e-mail": "email",
    "e-mailadres": "email",
    "emailadres": "email",
    "mail": "email",
    "name": "name",
    "naam": "name",
    "themes": "themes",
    "thema's": "themes",
    "themas": "themes",
    "thema": "themes",
}
THEME_SEPARATORS = re.compile(r"[;,]")
DELIMITERS = (";", ",")
# Distinct themes cells remembered while reading a file (a list has a handful).
MAX_THEME_CELLS = 1000


@dataclass(frozen=True)
class ImportRow:
    """One valid line of the file."""

    line: int
    address: Address
    name: str | None
    themes: tuple[str, ...]


@dataclass(frozen=True)
class RowProblem:
    """A line that was not imported, and why: one English line (`reason`), and a code
    with a detail for the Dutch pages ("email:invalid", "themes:unknown" with the
    unknown themes, "duplicate" with the earlier line, "fields", "unreadable", ...)."""

    line: int
    reason: str
    code: str = "other"
    detail: str = ""


@dataclass
class ImportReport:
    """What an import did; `mails` are the confirmations still to be delivered."""

    confirmed: int = 0
    pending: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    mails: list[OutgoingMail] = field(default_factory=list)

    def add(self, other: ImportReport) -> None:
        """Count in what `other` (a batch of the same import) did."""
        self.confirmed += other.confirmed
        self.pending += other.pending
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.problems.extend(other.problems)
        self.mails.extend(other.mails)

    @property
    def rows(self) -> int:
        return self.confirmed + self.pending + self.unchanged + self.skipped + len(self.problems)


def decode_file(raw: bytes) -> str:
    """The text of an uploaded file: UTF-8 (a BOM is dropped), else Windows-1252.

    Raises ImportFileError("encoding") for bytes that are no text in either (a
    spreadsheet's own format, an image), and ImportFileError("empty") for nothing.
    """
    if not raw.strip():
        raise ImportFileError("empty", "the CSV file is empty; it needs a header row")
    if b"\x00" in raw:
        raise ImportFileError("encoding", "the file is not text (it holds NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            "encoding", f"the file is neither UTF-8 nor Windows-1252 text: {exc.reason}"
        ) from exc


def _delimiter(first_line: str) -> str:
    """`;` when the header line has more of them than commas (Dutch Excel), else `,`."""
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _header(reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(
            "empty", "the CSV file is empty; it needs the header row email,name,themes"
        ) from None
    except csv.Error as exc:
        raise ImportFileError("header", f"line 1: not a readable CSV header: {exc}") from exc
    keys = ["".join(column.lstrip("\ufeff").split()).casefold() for column in header]
    names = [COLUMN_NAMES.get(key, "") for key in keys]
    if "email" not in names or "" in names or len(set(names)) != len(names):
        raise ImportFileError(
            "header",
            f"line 1: the header row must name the columns email, name and themes "
            f"(email is required), not {','.join(header)!r}",
        )
    return names


def unformula(value: str) -> str:
    """`value` without the `'` that an export put before a formula-like start."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def theme_slugs(cell: str, settings: Settings) -> tuple[tuple[str, ...], list[str]]:
    """The theme slugs a cell names (by slug or by name, any case), and what is unknown."""
    by_name = {theme.name.casefold(): slug for slug, theme in settings.themes.items()}
    by_slug = {slug.casefold(): slug for slug in settings.themes}
    chosen: set[str] = set()
    unknown: list[str] = []
    for part in THEME_SEPARATORS.split(cell):
        wanted = " ".join(part.split()).casefold()
        if not wanted:
            continue
        slug = by_slug.get(wanted) or by_name.get(wanted)
        if slug is None:
            unknown.append(part.strip())
        else:
            chosen.add(slug)
    return tuple(slug for slug in settings.themes if slug in chosen), unknown


class _RowParser:
    """Reads the lines of one file; what many lines share (a domain, a themes cell) is
    worked out once."""

    def __init__(self, columns: list[str], settings: Settings) -> None:
        self._columns = columns
        self._settings = settings
        self._normalize = AddressNormalizer()
        self._themes: dict[str, tuple[tuple[str, ...], list[str]]] = {}

    def themes(self, cell: str) -> tuple[tuple[str, ...], list[str]]:
        found = self._themes.get(cell)
        if found is None:
            if len(self._themes) >= MAX_THEME_CELLS:
                self._themes.clear()
            found = self._themes[cell] = theme_slugs(cell, self._settings)
        return found

    def parse(self, values: list[str], line: int) -> ImportRow | RowProblem:
        return _parse_row(values, self._columns, line, self._normalize, self.themes)


def _parse_row(
    values: list[str],
    columns: list[str],
    line: int,
    normalize: Callable[[str], Address],
    themes_of: Callable[[str], tuple[tuple[str, ...], list[str]]],
) -> ImportRow | RowProblem:
    if len(values) > len(columns):
        return RowProblem(
            line, f"{len(values)} fields where the header has {len(columns)}", "fields"
        )
    cells = {column: unformula(value) for column, value in zip(columns, values, strict=False)}
    themes, unknown = themes_of(cells.get("themes", ""))
    try:
        address = normalize(cells.get("email", ""))
        name = validate_name(cells.get("name") or None)
    except InvalidInput as exc:
        code = next(f"{key}:{value}" for key, value in exc.problems.items())
        return RowProblem(line, describe_problems(exc.problems), code)
    if unknown:
        listed = ", ".join(unknown)
        return RowProblem(line, f"unknown theme {listed}", "themes:unknown", listed)
    return ImportRow(line=line, address=address, name=name, themes=themes)


def read_rows(text: TextIO, settings: Settings) -> Iterator[ImportRow | RowProblem]:
    """Each data line as a valid row or a problem; a broken file ends with one problem.

    Raises ImportFileError when the header is missing or wrong: nothing can be read then.
    """
    first = text.readline()
    # The first line is read already; a stream need not be seekable.
    lines = itertools.chain([first], text) if first else iter(())
    reader = csv.reader(lines, delimiter=_delimiter(first))
    parser = _RowParser(_header(reader), settings)
    seen: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowProblem(line, f"the file cannot be read from here on: {exc}", "unreadable")
            return
        if not any(value.strip() for value in values):
            continue
        row = parser.parse(values, line)
        if isinstance(row, RowProblem):
            yield row
            continue
        if row.address.key in seen:
            earlier = seen[row.address.key]
            yield RowProblem(line, f"the same address as line {earlier}", "duplicate", str(earlier))
            continue
        seen[row.address.key] = line
        yield row
