"""Dutch dates in the site's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from newsletter.core.dates import format_date


def test_a_date_reads_as_dutch_words() -> None:
    assert format_date(datetime(2022, 9, 12, 10, 0, tzinfo=UTC), timezone="Europe/Amsterdam") == (
        "12 september 2022"
    )


def test_late_utc_evening_is_already_the_next_day_in_amsterdam() -> None:
    # 23:30 UTC in May is 01:30 summer time (UTC+2) on the 13th.
    moment = datetime(2021, 5, 12, 23, 30, tzinfo=UTC)
    assert format_date(moment, timezone="Europe/Amsterdam") == "13 mei 2021"
    assert format_date(moment, timezone="UTC") == "12 mei 2021"


def test_winter_time_is_one_hour_ahead_not_two() -> None:
    # In winter Amsterdam is UTC+1: 22:30 UTC is still the same day, 23:30 is not.
    assert format_date(datetime(2026, 1, 14, 22, 30, tzinfo=UTC), timezone="Europe/Amsterdam") == (
        "14 januari 2026"
    )
    assert format_date(datetime(2026, 1, 14, 23, 30, tzinfo=UTC), timezone="Europe/Amsterdam") == (
        "15 januari 2026"
    )


def test_the_night_the_clocks_go_back() -> None:
    # 2023-10-29 01:30 UTC is 02:30 winter time, after the clocks went back at 03:00.
    assert format_date(datetime(2023, 10, 29, 1, 30, tzinfo=UTC), timezone="Europe/Amsterdam") == (
        "29 oktober 2023"
    )
    assert format_date(datetime(2023, 10, 28, 22, 30, tzinfo=UTC), timezone="Europe/Amsterdam") == (
        "29 oktober 2023"
    )


def test_any_aware_offset_is_converted() -> None:
    new_york = timezone(timedelta(hours=-5))
    moment = datetime(2023, 3, 1, 20, 0, tzinfo=new_york)  # 1 March 02:00 in Amsterdam
    assert format_date(moment, timezone="Europe/Amsterdam") == "2 maart 2023"


def test_no_leading_zero_on_the_day() -> None:
    assert format_date(datetime(2023, 11, 2, 9, 0, tzinfo=UTC), timezone="Europe/Amsterdam") == (
        "2 november 2023"
    )


def test_another_locale_can_be_asked_for() -> None:
    moment = datetime(2021, 5, 13, 9, 0, tzinfo=UTC)
    assert format_date(moment, timezone="Europe/Amsterdam", locale="en") == "13 May 2021"


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_date(datetime(2021, 5, 13, 9, 0), timezone="Europe/Amsterdam")
