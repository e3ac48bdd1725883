"""The draft review's rules that need no database: where tests may go, which actions exist."""

from __future__ import annotations

import pytest

from newsletter.staff.accounts import StaffMember
from newsletter.staff.review import allowed_test_addresses, article_action


def test_a_test_goes_to_the_member_first_then_the_staff_list_once_each() -> None:
    member = StaffMember(id=1, name="redactie", email="redactie@example.org")
    staff_list = ["hoofdredactie@example.org", "redactie@example.org"]
    assert allowed_test_addresses(member, staff_list) == [
        "redactie@example.org",
        "hoofdredactie@example.org",
    ]


def test_a_member_without_an_address_gets_the_staff_list() -> None:
    member = StaffMember(id=1, name="redactie", email=None)
    staff_list = ["hoofdredactie@example.org"]
    assert allowed_test_addresses(member, staff_list) == staff_list


@pytest.mark.parametrize("value", ["remove", "up", "down"])
def test_the_article_buttons_name_an_action(value: str) -> None:
    assert article_action(value) == value


@pytest.mark.parametrize("value", ["", "delete", "Remove", "up "])
def test_anything_else_is_no_action(value: str) -> None:
    assert article_action(value) is None
