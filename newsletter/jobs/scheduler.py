"""The scheduler: APScheduler 3 runs the job on the cron of `[schedule]`, in the site's zone.

`python scheduler.py` and `newsletter schedule` both end up in `run_scheduler`, which
blocks until SIGTERM or SIGINT. The schedule is a cron trigger in `[site] timezone`, so
"0 9 * * tue" is 09:00 in Amsterdam in winter and in summer time alike. The job lives in
the database (table `scheduler_jobs`) with its next run time: a run missed while the
process was down is made up once at the next start when that is within
`misfire_grace_minutes`, and skipped (logged) when later; several missed runs make up
one (coalesce). Each process runs one job at a time. Besides the cron, the scheduler
checks every minute for a planned edition whose time has come (jobs/planned.py).

Two schedulers on one database both fire, as APScheduler 3 does not share a job store
between processes: the job's lock (jobs/locking.py) lets one of them work and records the
other as skipped. The job itself catches everything, so a failing run never stops the
scheduler.
"""

from __future__ import annotations

import logging
import signal
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Column, Engine, Float, LargeBinary, Table, Unicode, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.core.clock import utc_now
from newsletter.core.config import Settings, load_settings
from newsletter.core.db import open_database
from newsletter.core.errors import NewsletterError, StorageError
from newsletter.core.models import Base
from newsletter.core.signals import stop_on_signals
from newsletter.jobs.job import run_job
from newsletter.jobs.planned import CHECK_FUNCTION

logger = logging.getLogger(__name__)

JOB_ID = "newsletter-run"
RUN_NOW_ID = "newsletter-run-now"
PLANNED_ID = "newsletter-planned-sends"
# Found by name when the job is read back from the database, so it must stay importable.
JOB_FUNCTION = "newsletter.jobs.scheduler:scheduled_run"
JOBS_TABLE = "scheduler_jobs"

# SQLAlchemyJobStore's table, declared here too so that the migrations create it (two
# schedulers starting at once would otherwise race to) and autogenerate leaves it be.
scheduler_jobs = Table(
    JOBS_TABLE,
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


def next_scheduled_run(session: Session) -> datetime | None:
    """When the scheduler will next run the job (UTC), as its job store says; None when
    no scheduler has started on this database yet."""
    timestamp = session.scalar(
        select(scheduler_jobs.c.next_run_time).where(scheduler_jobs.c.id == JOB_ID)
    )
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def cron_trigger(settings: Settings) -> CronTrigger:
    """The `[schedule] cron` expression in the site's time zone."""
    return CronTrigger.from_crontab(
        settings.schedule.cron, timezone=ZoneInfo(settings.site.timezone)
    )


def scheduled_run(config_path: str) -> None:
    """One run for the scheduler; logs how it went and never raises.

    Called by name from the job store with the settings file the scheduler started
    with; settings and secrets are read afresh, so none of them is ever stored.
    """
    try:
        settings = load_settings(Path(config_path))
        database = open_database(settings.database_url)
        try:
            report = run_job(settings, database, clock=utc_now, trigger="schedule")
        finally:
            database.dispose()
    except NewsletterError as exc:
        logger.error("the scheduled run could not start: %s", exc)
        return
    except Exception:  # never let a run take the scheduler down
        logger.exception("the scheduled run crashed")
        return
    if report.outcome == "failed":
        logger.error(report.summary)
    else:
        logger.info(report.summary)


def _kept_next_run_time(store: SQLAlchemyJobStore, trigger: CronTrigger) -> Any:
    """The stored job's next run time when its schedule is unchanged: a run missed while
    the scheduler was down is then still due at start."""
    try:
        stored = store.lookup_job(JOB_ID)
    except Exception as exc:  # unreadable: start afresh (APScheduler replaces it)
        logger.warning("ignoring the stored job: %s", exc)
        return None
    if stored is None or repr(stored.trigger) != repr(trigger):
        return None
    return stored.next_run_time


def _log_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        logger.warning(
            "the run due at %s was missed: the scheduler was down for longer than "
            "[schedule] misfire_grace_minutes",
            event.scheduled_run_time.isoformat(timespec="minutes"),
        )
    elif event.code == EVENT_JOB_ERROR:
        logger.error("the run due at %s raised: %s", event.scheduled_run_time, event.exception)


def build_scheduler(
    settings: Settings,
    *,
    engine: Engine,
    config_path: Path,
    scheduler_class: type[Any] = BlockingScheduler,
    job_function: str = JOB_FUNCTION,
    run_now: bool = False,
    run_at: datetime | None = None,
    plan_check_function: str | None = CHECK_FUNCTION,
) -> Any:
    """A scheduler (not started) with the job on its cron, kept in the database.

    The caller owns `engine` and disposes of it once the scheduler has stopped (APScheduler
    touches its job store once more after shutting it down).

    `run_now` also runs the job once right at start, and `run_at` once at that (aware)
    time, from memory only (job RUN_NOW_ID); tests and the demo use them.
    `job_function` ("module:function", called with `config_path=`) lets tests put a
    probe in place of the job; `plan_check_function` is run every minute (job
    PLANNED_ID, from memory) to send planned editions, None for no such check.
    """
    timezone = ZoneInfo(settings.site.timezone)
    grace = settings.schedule.misfire_grace_minutes * 60
    store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
    scheduler = scheduler_class(
        jobstores={"default": store, "local": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=timezone,
    )
    kwargs = {"config_path": str(config_path)}
    _add_cron_job(scheduler, store, cron_trigger(settings), job_function, kwargs, grace=grace)
    if run_now or run_at is not None:
        scheduler.add_job(
            job_function,
            DateTrigger(run_at, timezone=timezone),
            id=RUN_NOW_ID,
            name="newsletter run (at start)" if run_at is None else "newsletter run (once)",
            jobstore="local",
            kwargs=kwargs,
            replace_existing=True,
        )
    if plan_check_function is not None:
        scheduler.add_job(
            plan_check_function,
            IntervalTrigger(minutes=1, timezone=timezone),
            id=PLANNED_ID,
            name="planned sends",
            jobstore="local",
            kwargs=kwargs,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
    scheduler.add_listener(_log_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    scheduler.add_listener(
        partial(_log_next_run, scheduler, settings.schedule.cron),
        EVENT_SCHEDULER_STARTED | EVENT_JOB_EXECUTED,
    )
    return scheduler


def _add_cron_job(
    scheduler: Any,
    store: SQLAlchemyJobStore,
    trigger: CronTrigger,
    job_function: str,
    kwargs: dict[str, str],
    *,
    grace: int,
) -> None:
    """The job on its cron, in the database; a stored job on the same cron keeps its
    next run time."""
    kept = _kept_next_run_time(store, trigger)
    scheduler.add_job(
        job_function,
        trigger,
        id=JOB_ID,
        name="newsletter run",
        kwargs=kwargs,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=grace,
        **({"next_run_time": kept} if kept is not None else {}),
    )


def _log_next_run(scheduler: Any, cron: str, event: SchedulerEvent) -> None:
    if getattr(event, "job_id", JOB_ID) != JOB_ID:
        return  # the minute check of planned sends: not worth a line each
    job = scheduler.get_job(JOB_ID)
    if job is not None and job.next_run_time is not None:
        logger.info(
            "next scheduled run at %s (%s)", job.next_run_time.isoformat(timespec="minutes"), cron
        )


def _stop_on_signals(scheduler: Any) -> None:
    """SIGTERM or SIGINT stop the scheduler; a run in progress finishes first, unless a
    second signal comes and ends the process at once."""

    def stop(signum: signal.Signals) -> None:
        logger.info("%s: stopping the scheduler", signum.name)
        if scheduler.running:
            scheduler.shutdown(wait=False)

    stop_on_signals(stop)


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines to stderr, for journald or a log file."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Each run opens the database, and each start adds the job: not worth a line each.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    logging.getLogger("apscheduler.scheduler").setLevel(max(level, logging.WARNING))


def run_scheduler(settings: Settings, *, config_path: Path, run_now: bool = False) -> None:
    """Run the job on its schedule until SIGTERM or SIGINT; blocks."""
    settings.require_secret_key()  # now, not at the first run on Tuesday morning
    # The schema, job table included, is current before anything else touches it.
    database = open_database(settings.database_url)
    try:
        scheduler = build_scheduler(
            settings,
            engine=database.engine,
            config_path=config_path.resolve(),
            run_now=run_now,
        )
        _stop_on_signals(scheduler)
        logger.info(
            "scheduler started: %r in %s, settings %s",
            settings.schedule.cron,
            settings.site.timezone,
            config_path,
        )
        scheduler.start()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot run the scheduler: {exc.__class__.__name__}: {exc}") from exc
    finally:
        database.dispose()
    logger.info("scheduler stopped")
