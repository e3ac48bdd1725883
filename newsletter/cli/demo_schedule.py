"""The demo's scheduler path (`newsletter demo --schedule`): the real scheduler sends.

The real scheduler runs the job once, a few seconds after it started, on the demo's
database; that run fetches, drafts and sends the edition.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from rich.console import Console

from newsletter.cli.demo_signups import SAMPLE_PEOPLE
from newsletter.core.config import SECRET_KEY_ENV, Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, NewsletterError
from newsletter.jobs.report import describe_run
from newsletter.jobs.runs import list_runs
from newsletter.jobs.scheduler import JOB_ID, RUN_NOW_ID, build_scheduler
from newsletter.mail.mailsink import MailSink

# The run is due this long after the scheduler started, and may take this long (fetch,
# draft, compose and send, on a slow machine) before the demo gives up.
RUN_DELAY_SECONDS = 3
RUN_TIMEOUT_SECONDS = 120.0


def run_on_schedule(
    settings: Settings, database: Database, workdir: Path, secret_key: str, out: Console
) -> None:
    """Start the real scheduler with one run due shortly, wait for that run, stop it.

    The scheduler is the one `newsletter schedule` runs (its cron job stored in the
    demo's database), in a background thread instead of blocking this one; the extra run
    is its `run_at` job, and the job function is the real one, which reads the settings
    file and the environment afresh.
    """
    zone = ZoneInfo(settings.site.timezone)
    due = datetime.now(zone).replace(microsecond=0) + timedelta(seconds=RUN_DELAY_SECONDS)
    ran: list[JobExecutionEvent] = []
    ended = threading.Event()

    def note_the_run(event: JobExecutionEvent) -> None:
        if event.job_id == RUN_NOW_ID:
            ran.append(event)
            ended.set()

    with _secret_key_in_environment(secret_key), _scheduler_problems() as problems:
        scheduler = build_scheduler(
            settings,
            engine=database.engine,
            config_path=workdir / "newsletter.toml",
            scheduler_class=BackgroundScheduler,
            run_at=due,
        )
        scheduler.add_listener(
            note_the_run, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )
        scheduler.start()
        try:
            _print_schedule(scheduler, settings, out)
            if not ended.wait(RUN_DELAY_SECONDS + RUN_TIMEOUT_SECONDS):
                raise NewsletterError(
                    f"the scheduled run did not finish within {RUN_TIMEOUT_SECONDS:g} s"
                )
            line = _scheduled_run_summary(database, ran[0], problems)
            out.print("the scheduled run finished:")
            out.print(f"  {line}", markup=False)
        finally:
            # Wait for the job's thread only when it is done: a stuck run must not hang.
            scheduler.shutdown(wait=ended.is_set())
    out.print("stopped the scheduler")


def _scheduled_run_summary(
    database: Database, event: JobExecutionEvent, problems: list[str]
) -> str:
    """The run's summary line, as `newsletter runs` shows it; raises unless it sent."""
    with database.session() as session:
        recorded = list_runs(session, limit=1)
    if event.code != EVENT_JOB_EXECUTED or not recorded or recorded[0].trigger != "schedule":
        reason = "; ".join(problems) or "nothing was recorded"
        raise NewsletterError(f"the scheduled run did not run: {reason}")
    line = describe_run(recorded[0])
    if recorded[0].outcome != "ok":
        raise NewsletterError(f"the scheduled run did not send the edition: {line}")
    return line


def _print_schedule(scheduler: Any, settings: Settings, out: Console) -> None:
    """When the scheduler will run the job, as it says itself."""
    zone = settings.site.timezone
    out.print(f"scheduler started, as `newsletter schedule` runs it (times in {zone}):")
    once, weekly = scheduler.get_job(RUN_NOW_ID), scheduler.get_job(JOB_ID)
    if once is not None and once.next_run_time is not None:
        out.print(
            f"  next run at {_local_time(once.next_run_time)}: once, for the demo", markup=False
        )
    if weekly is not None and weekly.next_run_time is not None:
        out.print(
            f'  then on [schedule] cron "{settings.schedule.cron}": '
            f"{_local_time(weekly.next_run_time)}",
            markup=False,
        )


def _local_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S %Z")


@contextmanager
def _secret_key_in_environment(secret_key: str) -> Iterator[None]:
    """The demo's key in this process's environment while the scheduler runs.

    The scheduled job reads its settings file and secrets afresh for every run, from the
    environment as in production; the key is taken out again afterwards.
    """
    before = os.environ.get(SECRET_KEY_ENV)
    os.environ[SECRET_KEY_ENV] = secret_key
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SECRET_KEY_ENV, None)
        else:
            os.environ[SECRET_KEY_ENV] = before


class _KeptMessages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _scheduler_problems() -> Iterator[list[str]]:
    """What the scheduler logs as going wrong, kept for the demo's one-line error.

    With a handler of its own, Python does not print these lines on stderr by itself.
    """
    handler = _KeptMessages()
    scheduler_log = logging.getLogger("newsletter.jobs.scheduler")
    scheduler_log.addHandler(handler)
    try:
        yield handler.messages
    finally:
        scheduler_log.removeHandler(handler)


def check_editions_arrived(sink: MailSink, out: Console) -> None:
    """Every sample subscriber's edition is in the mail sink."""
    editions = [mail for mail in sink.mails() if mail.message()["List-Unsubscribe"]]
    arrived = {address for mail in editions for address in mail.recipients}
    missing = [person.email for person in SAMPLE_PEOPLE if person.email not in arrived]
    if missing:
        raise DeliveryError(f"the edition did not reach {', '.join(missing)}")
    out.print(
        f"{len(editions)} mails with the edition arrived in the mail sink, "
        f"one for each of the {len(SAMPLE_PEOPLE)} subscribers"
    )
