"""Page numbers from links, the number of pages, and a page's neighbours."""

from __future__ import annotations

import pytest

from newsletter.core.paging import Paging, count_pages, parse_page_number


@pytest.mark.parametrize(("value", "number"), [("1", 1), ("12", 12), ("999999", 999999)])
def test_a_page_number_is_digits_without_a_leading_zero(value: str, number: int) -> None:
    assert parse_page_number(value) == number


@pytest.mark.parametrize("value", ["", "0", "01", "-1", "1.5", "abc", " 1", "1000000"])
def test_anything_else_is_no_page_number(value: str) -> None:
    assert parse_page_number(value) is None


@pytest.mark.parametrize(("total", "pages"), [(0, 1), (1, 1), (50, 1), (51, 2), (100, 2)])
def test_an_empty_list_has_one_page_and_a_partial_page_counts(total: int, pages: int) -> None:
    assert count_pages(total, 50) == pages


def test_the_first_and_last_pages_have_one_neighbour() -> None:
    assert (Paging(1, 3).previous, Paging(1, 3).next) == (None, 2)
    assert (Paging(2, 3).previous, Paging(2, 3).next) == (1, 3)
    assert (Paging(3, 3).previous, Paging(3, 3).next) == (2, None)
    assert (Paging(1, 1).previous, Paging(1, 1).next) == (None, None)
