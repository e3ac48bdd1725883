"""The growth per week, replayed from consent log events with a fixed clock (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from newsletter.staff.growth import LogEvent, growth_series, summarize, week_start

ZONE = ZoneInfo("Europe/Amsterdam")
# Tuesday 17 November 2026, 09:00 in Amsterdam: its week began Monday 16 November.
NOW = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
THIS_WEEK = date(2026, 11, 16)


def weeks_ago(weeks: int, **extra: float) -> datetime:
    return NOW - timedelta(weeks=weeks, **extra)


def test_a_week_begins_on_monday_in_the_sites_zone() -> None:
    assert week_start(NOW, ZONE) == THIS_WEEK
    # Sunday 23:30 UTC is already Monday in Amsterdam.
    assert week_start(datetime(2026, 11, 15, 23, 30, tzinfo=UTC), ZONE) == THIS_WEEK


def test_no_events_give_a_year_of_empty_weeks_ending_this_week() -> None:
    points = growth_series([], confirmed_now=0, now=NOW, zone=ZONE)
    assert len(points) == 52
    assert points[-1].start == THIS_WEEK
    assert points[0].start == THIS_WEEK - timedelta(weeks=51)
    assert {(p.confirmed, p.signups, p.confirmations, p.departures) for p in points} == {
        (0, 0, 0, 0)
    }


def test_people_join_and_leave_in_the_weeks_they_did_it() -> None:
    events = [
        # Anouk: asked and confirmed 60 weeks ago (before the chart), still on the list.
        LogEvent("row:1", "subscribe_requested", weeks_ago(60)),
        LogEvent("row:1", "confirmed", weeks_ago(60, hours=-1)),
        # Bram: asked twice in one week (counts once), confirmed, left 2 weeks ago.
        LogEvent("row:2", "subscribe_requested", weeks_ago(10)),
        LogEvent("row:2", "subscribe_requested", weeks_ago(10, hours=-2)),
        LogEvent("row:2", "confirmed", weeks_ago(10, hours=-3)),
        LogEvent("row:2", "unsubscribed", weeks_ago(2)),
        # A staff member added Cas with a reason; his address bounced last week, and a
        # second report of it changes nothing.
        LogEvent("row:3", "added_by_staff", weeks_ago(5)),
        LogEvent("row:3", "bounced", weeks_ago(1)),
        LogEvent("row:3", "bounced", weeks_ago(1, hours=-1)),
        # Someone asked but never confirmed and was purged: never on the list.
        LogEvent("row:4", "subscribe_requested", weeks_ago(3)),
        LogEvent("row:4", "purged", weeks_ago(1)),
        # Dana confirmed and was erased later: her events keep only the address hash.
        LogEvent("hash:d", "confirmed", weeks_ago(8)),
        LogEvent("hash:d", "erased", weeks_ago(4)),
    ]
    points = growth_series(events, confirmed_now=1, now=NOW, zone=ZONE)
    by_age = {51 - index: point for index, point in enumerate(points)}
    assert by_age[51].confirmed == 1  # Anouk, a year ago
    assert by_age[10].confirmed == 2 and by_age[10].signups == 1
    assert by_age[10].confirmations == 1
    assert by_age[8].confirmed == 3
    assert by_age[5].confirmed == 4 and by_age[5].confirmations == 1
    assert by_age[4].confirmed == 3 and by_age[4].departures == 1
    assert by_age[3].signups == 1 and by_age[3].confirmed == 3
    assert by_age[2].confirmed == 2 and by_age[2].departures == 1
    assert by_age[1].confirmed == 1 and by_age[1].departures == 1
    assert by_age[0].confirmed == 1
    summary = summarize(points)
    assert (summary.confirmed, summary.year_ago) == (1, 1)
    assert (summary.signups_4_weeks, summary.departures_4_weeks) == (1, 2)


def test_the_chart_ends_at_the_confirmed_rows_of_today() -> None:
    # Two people confirmed in the log, but the table holds three confirmed rows (one
    # was set by hand): every week moves up by one, so today is right.
    events = [
        LogEvent("row:1", "confirmed", weeks_ago(20)),
        LogEvent("row:2", "confirmed", weeks_ago(3)),
    ]
    points = growth_series(events, confirmed_now=3, now=NOW, zone=ZONE)
    assert points[-1].confirmed == 3
    assert points[-21].confirmed == 2 and points[-22].confirmed == 1


def test_events_after_now_are_left_out() -> None:
    events = [LogEvent("row:1", "confirmed", NOW + timedelta(days=1))]
    points = growth_series(events, confirmed_now=0, now=NOW, zone=ZONE)
    assert points[-1].confirmations == 0 and points[-1].confirmed == 0
