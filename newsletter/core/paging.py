"""Lists shown a page at a time: the page number in a link, how many pages, the neighbours."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A page number as our links write it; the cap keeps any offset far from integer limits.
_PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,5}")


def parse_page_number(value: str) -> int | None:
    """The page number `value` spells (digits, no leading zero, at most six), else None."""
    return int(value) if _PAGE_NUMBER.fullmatch(value) else None


def count_pages(total: int, page_size: int) -> int:
    """How many pages `total` items fill; at least one, so an empty list has its page 1."""
    return max(1, -(-total // page_size))


@dataclass(frozen=True)
class Paging:
    """Where one page sits among `page_count`; `number` counts from 1."""

    number: int
    page_count: int

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.page_count else None
