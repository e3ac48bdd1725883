"""Reading a CSV file of addresses (email,name,themes) into rows for staff's `add`."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from newsletter.core.config import Settings
from newsletter.core.errors import InvalidInput, SubscriberError
from newsletter.mail.mailer import OutgoingMail
from subscribers.addresses import (
    Address,
    describe_problems,
    normalize_address,
    unknown_themes,
    validate_name,
    validate_themes,
)

COLUMNS = ("email", "name", "themes")
THEME_SEPARATOR = ";"


@dataclass(frozen=True)
class ImportRow:
    """One valid line of the file."""

    line: int
    address: Address
    name: str | None
    themes: tuple[str, ...]


@dataclass(frozen=True)
class RowProblem:
    """A line that was not imported, and why, in one English line."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did; `mails` are the confirmations still to be delivered."""

    confirmed: int = 0
    pending: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    mails: list[OutgoingMail] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.confirmed + self.pending + self.unchanged + len(self.problems)


def _header(reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise SubscriberError(
            "the CSV file is empty; it needs the header row email,name,themes"
        ) from None
    except csv.Error as exc:
        raise SubscriberError(f"line 1: not a readable CSV header: {exc}") from exc
    names = [column.strip().lstrip("\ufeff").casefold() for column in header]
    unknown = [name for name in names if name not in COLUMNS]
    if "email" not in names or unknown or len(set(names)) != len(names):
        raise SubscriberError(
            f"line 1: the header row must name the columns email, name and themes "
            f"(email is required), not {','.join(header)!r}"
        )
    return names


def _parse_row(values: list[str], columns: list[str], line: int, settings: Settings) -> ImportRow:
    if len(values) > len(columns):
        raise ValueError(f"{len(values)} fields where the header has {len(columns)}")
    cells = dict(zip(columns, values, strict=False))
    themes = [
        slug.strip() for slug in cells.get("themes", "").split(THEME_SEPARATOR) if slug.strip()
    ]
    try:
        address = normalize_address(cells.get("email", ""))
        name = validate_name(cells.get("name") or None)
        chosen = validate_themes(themes, settings)
    except InvalidInput as exc:
        if exc.problems.get("themes") == "unknown":
            unknown = ", ".join(unknown_themes(themes, settings))
            raise ValueError(f"unknown theme {unknown}") from exc
        raise ValueError(describe_problems(exc.problems)) from exc
    return ImportRow(line=line, address=address, name=name, themes=chosen)


def read_rows(text: TextIO, settings: Settings) -> Iterator[ImportRow | RowProblem]:
    """Each data line as a valid row or a problem; a broken file ends with one problem.

    Raises SubscriberError when the header is missing or wrong: nothing can be read then.
    """
    reader = csv.reader(text)
    columns = _header(reader)
    seen: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowProblem(line, f"the file cannot be read from here on: {exc}")
            return
        if not any(value.strip() for value in values):
            continue
        try:
            row = _parse_row(values, columns, line, settings)
        except ValueError as exc:
            yield RowProblem(line, str(exc))
            continue
        if row.address.key in seen:
            yield RowProblem(line, f"the same address as line {seen[row.address.key]}")
            continue
        seen[row.address.key] = line
        yield row
