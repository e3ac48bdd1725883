"""What the staff dashboard shows: the next run, the last runs, the list, the editions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.records import record_from
from newsletter.delivery.outbox import StateCounts, state_counts
from newsletter.editions.lifecycle import list_editions
from newsletter.editions.planning import PlannedSend, planned_sends
from newsletter.jobs.runs import Run, list_runs
from newsletter.jobs.scheduler import cron_trigger, next_scheduled_run
from subscribers.search import subscriber_counts


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
class Overview:
    next_run: NextRun
    runs: list[Run]
    subscribers: dict[str, int]
    editions: list[EditionLine]
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
    return Overview(
        next_run=next_run(session, settings, now=now),
        runs=list_runs(session, limit=runs),
        subscribers=subscriber_counts(session),
        editions=lines,
        planned=planned_sends(session),
    )


def load_overview(database: Database, settings: Settings, *, now: datetime) -> Overview:
    """The dashboard's overview, read in a transaction of its own."""
    with database.session() as session:
        return overview(session, settings, now=now)
