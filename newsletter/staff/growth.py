"""The list's growth per week, from the consent log and the subscriber rows (no tracking).

    consent log ──replay per person──> who was confirmed when ──per week──> WeekPoint

Each person's events are replayed in order: `confirmed`, `added_by_staff` and `imported`
(both logged only for confirmed additions) put them on the list; leaving, bouncing, a
complaint, removal, erasure or the purge take them off. A week's `confirmed` is how many
were on the list at its end (or now, for the current week); `signups` the people who
asked for a confirmation mail that week, `confirmations` and `departures` the moves on
and off. The replayed count of today is set equal to the confirmed rows of today, and
every week shifted by the same difference, so the chart always ends at the real figure
(it differs only when rows were changed outside the product). An erased person's events
keep only the hash of their address, so they are replayed by that hash.

Pure: events and the clock in, weeks out; `load_growth` reads the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers.models import ConsentEvent, Subscriber

ON_EVENTS = frozenset({"confirmed", "added_by_staff", "imported"})
OFF_EVENTS = frozenset(
    {"unsubscribed", "removed", "bounced", "soft_bounced", "complained", "erased", "purged"}
)
SIGNUP_EVENTS = frozenset({"subscribe_requested"})
WEEKS = 52


@dataclass(frozen=True)
class LogEvent:
    """One consent log line as the replay needs it: whose (a key per person), what, when."""

    person: str
    event: str
    at: datetime


@dataclass(frozen=True)
class WeekPoint:
    start: date  # the Monday the week begins
    confirmed: int  # on the list at the end of the week (now, for the current week)
    signups: int
    confirmations: int
    departures: int


def week_start(moment: datetime, zone: ZoneInfo) -> date:
    """The Monday of `moment`'s week, in the site's time zone."""
    day = moment.astimezone(zone).date()
    return day - timedelta(days=day.weekday())


def growth_series(
    events: Iterable[LogEvent],
    *,
    confirmed_now: int,
    now: datetime,
    zone: ZoneInfo,
    weeks: int = WEEKS,
) -> list[WeekPoint]:
    """The last `weeks` weeks, oldest first, the current one last."""
    first = week_start(now, zone) - timedelta(weeks=weeks - 1)
    starts = [first + timedelta(weeks=index) for index in range(weeks)]
    on_list: set[str] = set()
    count = 0
    before_first = 0
    ends: dict[date, int] = {}
    moves: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    signups: dict[date, set[str]] = defaultdict(set)
    for item in sorted(events, key=lambda event: event.at):
        if item.at > now:
            continue
        week = week_start(item.at, zone)
        if item.event in SIGNUP_EVENTS:
            signups[week].add(item.person)
        elif item.event in ON_EVENTS and item.person not in on_list:
            on_list.add(item.person)
            count += 1
            moves[week][0] += 1
        elif item.event in OFF_EVENTS and item.person in on_list:
            on_list.discard(item.person)
            count -= 1
            moves[week][1] += 1
        if week < first:
            before_first = count
        ends[week] = count
    offset = confirmed_now - count
    points = []
    running = before_first
    for start in starts:
        running = ends.get(start, running)
        points.append(
            WeekPoint(
                start=start,
                confirmed=max(0, running + offset),
                signups=len(signups.get(start, ())),
                confirmations=moves[start][0] if start in moves else 0,
                departures=moves[start][1] if start in moves else 0,
            )
        )
    return points


def load_growth(session: Session, *, now: datetime, zone: ZoneInfo) -> list[WeekPoint]:
    """`growth_series` of this database's consent log and confirmed rows."""
    wanted = ON_EVENTS | OFF_EVENTS | SIGNUP_EVENTS
    rows = session.execute(
        select(
            ConsentEvent.subscriber_id,
            ConsentEvent.subject_hash,
            ConsentEvent.event,
            ConsentEvent.created_at,
        )
        .where(ConsentEvent.event.in_(sorted(wanted)))
        .order_by(ConsentEvent.created_at, ConsentEvent.id)
    )
    events = [
        LogEvent(f"row:{row_id}" if row_id is not None else f"hash:{subject}", event, at)
        for row_id, subject, event, at in rows
    ]
    confirmed = session.scalar(
        select(func.count(Subscriber.id)).where(Subscriber.status == "confirmed")
    )
    return growth_series(events, confirmed_now=int(confirmed or 0), now=now, zone=zone)


@dataclass(frozen=True)
class GrowthSummary:
    """The words beside the chart: today, a year ago, and the last four weeks."""

    confirmed: int
    year_ago: int
    signups_4_weeks: int
    confirmations_4_weeks: int
    departures_4_weeks: int


def summarize(points: list[WeekPoint]) -> GrowthSummary:
    recent = points[-4:]
    return GrowthSummary(
        confirmed=points[-1].confirmed if points else 0,
        year_ago=points[0].confirmed if points else 0,
        signups_4_weeks=sum(point.signups for point in recent),
        confirmations_4_weeks=sum(point.confirmations for point in recent),
        departures_4_weeks=sum(point.departures for point in recent),
    )
