"""The schedule in words, as the sign-up page, the welcome mail and the dashboard say it."""

from __future__ import annotations

import pytest

from newsletter.jobs.cadence import IRREGULAR, describe_schedule


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 9 * * tue", "elke dinsdag om 09:00"),
        ("30 7 * * *", "elke dag om 07:30"),
        ("0 9 * * mon,thu", "elke maandag en donderdag om 09:00"),
        ("0 18 * * 1,3,5", "elke maandag, woensdag en vrijdag om 18:00"),
        ("0 9 * * mon-fri", "elke werkdag om 09:00"),
        ("0 10 * * sun", "elke zondag om 10:00"),
        ("0 10 * * 7", "elke zondag om 10:00"),
        ("0 9 1 * *", "elke maand op de 1e om 09:00"),
    ],
)
def test_common_schedules_read_as_words(cron: str, words: str) -> None:
    assert describe_schedule(cron) == words


@pytest.mark.parametrize(
    "cron",
    ["*/15 * * * *", "0 9 * 1 mon", "0 9 1 * mon", "0 9 * * fri-mon", "0 9 * *", "x y z a b"],
)
def test_other_schedules_are_not_put_into_wrong_words(cron: str) -> None:
    assert describe_schedule(cron) == IRREGULAR
