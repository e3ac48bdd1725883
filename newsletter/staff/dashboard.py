"""What the staff dashboard shows: warnings, the next run, the runs, the list, its growth.

A warning (`Attention`) is a fact that needs a person, with the values the template puts
into words: the scheduler missed a run, a draft waits for review, deliveries wait for a
retry, the return mailbox set mail aside that it did not understand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.records import record_from
from newsletter.delivery.outbox import StateCounts, state_counts
from newsletter.editions.lifecycle import list_editions
from newsletter.editions.planning import PlannedSend, planned_sends
from newsletter.jobs.cadence import describe_schedule
from newsletter.jobs.runs import Run, list_runs
from newsletter.jobs.scheduler import cron_trigger, next_scheduled_run
from newsletter.staff.growth import GrowthSummary, WeekPoint, load_growth, summarize
from subscribers.search import subscriber_counts

# A run counts as missed when it has not started this long after it was due.
MISSED_AFTER = timedelta(minutes=30)
# A draft is worth a warning once it has waited this long for review.
DRAFT_WAITS = timedelta(days=1)
# The runs whose mail not understood is still worth a look.
RETURNS_LOOK_BACK = timedelta(days=14)


@dataclass(frozen=True)
class NextRun:
    """When the job runs next; `from_scheduler` is False when no scheduler recorded one
    (it is not running, or never ran here) and the time is what the cron line says."""

    at: datetime | None
    from_scheduler: bool
    cron: str
    auto_send: bool


@dataclass(frozen=True)
class EditionLine:
    number: int
    state: str
    subject: str
    articles: int
    created_at: datetime
    sent_at: datetime | None
    deliveries: StateCounts


@dataclass(frozen=True)
class Attention:
    """Something that needs a person. `kind`: scheduler_missed (`at` was due, `since` the
    last run or None), draft_waiting (edition `number`, `days`), retries_waiting (edition
    `number`, `count`), returns_not_understood (`count`, `since`, `where`)."""

    kind: str
    number: int | None = None
    count: int = 0
    days: int = 0
    at: datetime | None = None
    since: datetime | None = None
    where: str | None = None


@dataclass(frozen=True)
class Overview:
    next_run: NextRun
    runs: list[Run]
    subscribers: dict[str, int]
    editions: list[EditionLine]
    schedule: str  # the cron line in words: "elke dinsdag om 09:00"
    warnings: list[Attention]
    growth: list[WeekPoint]
    growth_summary: GrowthSummary
    planned: list[PlannedSend]  # approved editions waiting for their moment


def next_run(session: Session, settings: Settings, *, now: datetime) -> NextRun:
    stored = next_scheduled_run(session)
    if stored is not None and stored >= now:
        return NextRun(stored, True, settings.schedule.cron, settings.schedule.auto_send)
    planned = cron_trigger(settings).get_next_fire_time(None, now)
    return NextRun(planned, False, settings.schedule.cron, settings.schedule.auto_send)


def overview(
    session: Session, settings: Settings, *, now: datetime, runs: int = 10, editions: int = 20
) -> Overview:
    lines = [
        record_from(EditionLine, edition, deliveries=state_counts(session, edition.number))
        for edition in list_editions(session)[:editions]
    ]
    recent_runs = list_runs(session, limit=runs)
    growth = load_growth(session, now=now, zone=ZoneInfo(settings.site.timezone))
    return Overview(
        next_run=next_run(session, settings, now=now),
        runs=recent_runs,
        subscribers=subscriber_counts(session),
        editions=lines,
        schedule=describe_schedule(settings.schedule.cron),
        warnings=warnings(session, settings, lines, now=now),
        growth=growth,
        growth_summary=summarize(growth),
        planned=planned_sends(session),
    )


def warnings(
    session: Session, settings: Settings, editions: list[EditionLine], *, now: datetime
) -> list[Attention]:
    found = []
    missed = missed_run(session, settings, now=now)
    if missed is not None:
        found.append(missed)
    for line in editions:
        waited = now - line.created_at
        if line.state == "draft" and waited >= DRAFT_WAITS:
            found.append(Attention("draft_waiting", number=line.number, days=waited.days))
        if line.deliveries.retry:
            found.append(
                Attention("retries_waiting", number=line.number, count=line.deliveries.retry)
            )
    unknown = returns_not_understood(session, settings, now=now)
    if unknown is not None:
        found.append(unknown)
    return found


def missed_run(session: Session, settings: Settings, *, now: datetime) -> Attention | None:
    """A run the schedule wanted after the last run started, but that never came."""
    last = session.scalar(select(func.max(Run.started_at)))
    if last is None:
        return None  # nothing ran yet: the runs card says so
    due = cron_trigger(settings).get_next_fire_time(None, last + timedelta(minutes=1))
    if due is None or due + MISSED_AFTER > now:
        return None
    return Attention("scheduler_missed", at=due, since=last)


def returns_not_understood(
    session: Session, settings: Settings, *, now: datetime
) -> Attention | None:
    """Mail the return mailbox set aside for a person in the last RETURNS_LOOK_BACK."""
    since = now - RETURNS_LOOK_BACK
    runs = session.scalars(select(Run).where(Run.started_at >= since))
    count = sum(int((run.counts or {}).get("returned_unknown", 0) or 0) for run in runs)
    if not count:
        return None
    bounces = settings.bounces
    if bounces.maildir is not None:
        where = f"{bounces.maildir}/.unknown"
    else:
        where = bounces.imap_unknown_folder or "$NewsletterUnknown"
    return Attention("returns_not_understood", count=count, since=since, where=where)


def load_overview(database: Database, settings: Settings, *, now: datetime) -> Overview:
    """The dashboard's overview, read in a transaction of its own."""
    with database.session() as session:
        return overview(session, settings, now=now)
