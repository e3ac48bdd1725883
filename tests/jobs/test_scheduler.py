"""The scheduler: local time across summer time, missed runs, and two schedulers at once.

In-process tests run APScheduler's BackgroundScheduler on the real job store with the
clock moved by time-machine, and a probe in place of the job; the last test starts two
real scheduler processes (`python scheduler.py` and `newsletter schedule`) on one
database and stops them with SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from newsletter.core.config import Settings, settings_from_mapping
from newsletter.core.db import Database
from newsletter.core.errors import ConfigError
from newsletter.delivery.outbox import OutboxRow
from newsletter.editions.models import Edition
from newsletter.jobs.runs import Run
from newsletter.jobs.scheduler import (
    build_scheduler,
    cron_trigger,
    next_scheduled_run,
    scheduled_run,
)
from subscribers.consent import Requester
from subscribers.management import ListManagement
from tests.support.clock import FixedClock
from tests.support.paths import ROOT, SEEDS_FEED
from tests.support.smtpserver import TestSmtpServer
from tests.support.waiting import PATIENCE_SECONDS, exit_code, wait_until

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
PROBE = "tests.jobs.test_scheduler:probe"
probe_calls: list[tuple[str, datetime]] = []


def probe(config_path: str) -> None:
    """Stands in for the job: notes when it ran (by the travelled clock)."""
    probe_calls.append((config_path, datetime.now(UTC)))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMSTERDAM)  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _no_probe_calls() -> Iterator[None]:
    probe_calls.clear()
    yield
    probe_calls.clear()


def background_scheduler(settings: Settings, db: Database, tmp_path: Path) -> Any:
    return build_scheduler(
        settings,
        engine=db.engine,
        config_path=tmp_path / "newsletter.toml",
        scheduler_class=BackgroundScheduler,
        job_function=PROBE,
        plan_check_function=None,  # the minute check of planned sends has its own test
    )


class Watched:
    """A background scheduler with the probe as its job, and the events it reported."""

    def __init__(self, settings: Settings, db: Database, tmp_path: Path) -> None:
        self.events: list[JobExecutionEvent] = []
        self.happened = threading.Event()
        self.scheduler = background_scheduler(settings, db, tmp_path)
        self.scheduler.add_listener(self._note, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)

    def _note(self, event: JobExecutionEvent) -> None:
        self.events.append(event)
        self.happened.set()

    def run_until_an_event(self) -> JobExecutionEvent:
        self.scheduler.start()
        return self.until_an_event()

    def until_an_event(self) -> JobExecutionEvent:
        """The one event of the started scheduler, which is then shut down."""
        try:
            wait_until(self.happened.is_set, what="the scheduler to run or skip its job")
            # Anything more it would do now comes from the same pass over the job store,
            # which ends by storing the job's next run; shutting down then waits for the
            # jobs that pass started.
            wait_until(self._planned_past_the_event, what="the scheduler to plan the next run")
        finally:
            self.scheduler.shutdown()
        [event] = self.events
        return event

    def _planned_past_the_event(self) -> bool:
        done = self.events[0].scheduled_run_time
        jobs = self.scheduler.get_jobs()  # waits for a pass over the job store to end
        return all(job.next_run_time is None or job.next_run_time > done for job in jobs)


def stored_next_run(db: Database) -> datetime:
    with db.session() as session:
        when = next_scheduled_run(session)
    assert when is not None
    return when.astimezone(AMSTERDAM)


def test_the_cron_is_local_time_in_winter_and_in_summer(settings: Settings) -> None:
    trigger = cron_trigger(settings)  # "0 9 * * tue" in Europe/Amsterdam
    winter = trigger.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=UTC))
    assert winter == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)
    # Summer time starts on Sunday 29 March: from the Tuesday before to the one after.
    before = trigger.get_next_fire_time(None, datetime(2026, 3, 24, 7, 0, tzinfo=UTC))
    after = trigger.get_next_fire_time(before, before + timedelta(seconds=1))
    assert before == datetime(2026, 3, 24, 8, 0, tzinfo=UTC)
    assert after == datetime(2026, 3, 31, 7, 0, tzinfo=UTC)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(days=7, hours=-1)
    # And back on Sunday 25 October.
    autumn = trigger.get_next_fire_time(None, datetime(2026, 10, 21, tzinfo=UTC))
    assert autumn == datetime(2026, 10, 27, 8, 0, tzinfo=UTC)
    assert {winter.astimezone(AMSTERDAM).hour, after.astimezone(AMSTERDAM).hour} == {9}


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({"cron": "0 9 * *"}, "schedule.cron: not a crontab expression '0 9 * *': Wrong number"),
        ({"cron": "0 9 * * dinsdag"}, "schedule.cron: not a crontab expression"),
        ({"staff": ["Redactie <redactie@rvjeugdzorg.nl>"]}, "schedule.staff.0: not a bare e-mail"),
        ({"misfire_grace_minutes": 0}, "schedule.misfire_grace_minutes: "),
        ({"auto_sent": True}, "schedule.auto_sent: unknown key"),
    ],
)
def test_schedule_settings_are_checked_at_start(
    tmp_path: Path, schedule: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        settings_from_mapping({"schedule": schedule}, base_dir=tmp_path, env={})


@pytest.mark.parametrize(
    "nine_local_in_utc",
    [datetime(2026, 1, 6, 8, 0, tzinfo=UTC), datetime(2026, 6, 30, 7, 0, tzinfo=UTC)],
    ids=["winter", "summer"],
)
def test_the_scheduler_fires_at_nine_local_time(
    settings: Settings, db: Database, tmp_path: Path, nine_local_in_utc: datetime
) -> None:
    # Started a day early, the scheduler plans the run at nine however long starting
    # takes; then the clock jumps to just before nine and the scheduler is woken to see it.
    with time_machine.travel(nine_local_in_utc - timedelta(days=1), tick=True) as traveller:
        watched = Watched(settings, db, tmp_path)
        watched.scheduler.start()

        def planned() -> bool:
            with db.session() as session:
                return next_scheduled_run(session) == nine_local_in_utc

        wait_until(planned, what="the scheduler to plan the run at nine")
        traveller.move_to(nine_local_in_utc - timedelta(seconds=0.5))
        watched.scheduler.wakeup()
        event = watched.until_an_event()
    assert event.code == EVENT_JOB_EXECUTED
    assert event.scheduled_run_time == nine_local_in_utc
    assert event.scheduled_run_time.astimezone(AMSTERDAM).hour == 9
    [(config_path, ran_at)] = probe_calls
    assert config_path == str(tmp_path / "newsletter.toml")
    # Not before nine; how long after depends on the machine, not on the schedule.
    assert nine_local_in_utc <= ran_at < nine_local_in_utc + timedelta(seconds=PATIENCE_SECONDS)
    assert stored_next_run(db) == nine_local_in_utc.astimezone(AMSTERDAM) + timedelta(days=7)


def test_a_missed_run_is_made_up_once_at_start_within_the_grace_time(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    with db.session() as session:
        assert next_scheduled_run(session) is None  # no scheduler has run here yet
    # The scheduler runs on Tuesday at 08:59 and stops; 09:00 passes while it is down.
    with time_machine.travel(local(2026, 1, 6, 8, 59), tick=False):
        down = background_scheduler(settings, db, tmp_path)
        down.start()
        down.shutdown()
    assert stored_next_run(db) == local(2026, 1, 6, 9, 0)
    # Back at 09:30, within the hour of grace: the run is made up, once.
    with time_machine.travel(local(2026, 1, 6, 9, 30), tick=False):
        event = Watched(settings, db, tmp_path).run_until_an_event()
    assert (event.code, event.scheduled_run_time) == (EVENT_JOB_EXECUTED, local(2026, 1, 6, 9, 0))
    assert len(probe_calls) == 1
    assert stored_next_run(db) == local(2026, 1, 13, 9, 0)
    # Down again over the next Tuesday, back at 10:30: too late, skipped, on to the next.
    with time_machine.travel(local(2026, 1, 13, 10, 30), tick=False):
        event = Watched(settings, db, tmp_path).run_until_an_event()
    assert (event.code, event.scheduled_run_time) == (EVENT_JOB_MISSED, local(2026, 1, 13, 9, 0))
    assert len(probe_calls) == 1
    assert stored_next_run(db) == local(2026, 1, 20, 9, 0)


def test_a_changed_schedule_starts_afresh(
    make_settings: Callable[..., Settings], db: Database, tmp_path: Path
) -> None:
    with time_machine.travel(local(2026, 1, 6, 8, 59), tick=False):
        first = background_scheduler(make_settings(), db, tmp_path)
        first.start()
        first.shutdown()
    with time_machine.travel(local(2026, 1, 6, 9, 30), tick=False):
        moved = background_scheduler(make_settings(schedule={"cron": "0 10 * * tue"}), db, tmp_path)
        moved.start()
        moved.shutdown()
    assert probe_calls == []
    assert stored_next_run(db) == local(2026, 1, 6, 10, 0)


def test_the_scheduled_run_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scheduled_run(str(tmp_path / "missing.toml"))
    assert "the scheduled run could not start: config file not found" in caplog.text


# -- two real scheduler processes --------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


def start_scheduler(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef"}
    with log.open("wb") as stream:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=stream, stderr=stream)


def finished_runs(db: Database) -> list[Run]:
    with db.session() as session:
        return list(session.scalars(select(Run).where(Run.outcome != "running").order_by(Run.id)))


def test_two_schedulers_started_together_make_one_edition_and_one_send(
    make_settings: Callable[..., Settings],
    database_url: str,
    db: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
    tmp_path: Path,
) -> None:
    readers = ["lezer0@example.org", "lezer1@example.org"]
    people = ListManagement(make_settings(), db, clock=clock)
    for address in readers:
        people.add(
            address,
            name=None,
            themes=[],
            requester=Requester(source="cli"),
            confirmed=True,
            consent_note="paper form",
        )
    config = tmp_path / "newsletter.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[feed]\nurls = ["{SEEDS_FEED}"]\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\n'
        f"timeout_seconds = {PATIENCE_SECONDS}\n"
        '[sender]\nfrom = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"\n'
        # Far from now: only the run at start (--run-now) happens during the test.
        '[schedule]\ncron = "0 3 29 2 *"\nauto_send = true\n',
        encoding="utf-8",
    )
    schedulers = [
        start_scheduler(
            [sys.executable, "scheduler.py", "--config", str(config), "--run-now"],
            tmp_path / "scheduler-1.log",
        ),
        start_scheduler(
            [sys.executable, "-m", "newsletter", "--config", str(config), "schedule", "--run-now"],
            tmp_path / "scheduler-2.log",
        ),
    ]

    def both_ran() -> list[Run] | None:
        assert all(p.poll() is None for p in schedulers), "a scheduler ended early"
        runs = finished_runs(db)
        return runs if len(runs) >= 2 else None

    try:
        runs = wait_until(both_ran, what="both schedulers to finish their run")
    finally:
        for process in schedulers:
            process.send_signal(signal.SIGTERM)
        codes = [exit_code(process, what="a scheduler after SIGTERM") for process in schedulers]
    logs = [(tmp_path / f"scheduler-{n}.log").read_text() for n in (1, 2)]
    assert codes == [0, 0], logs
    assert all("scheduler stopped" in log and "Traceback" not in log for log in logs), logs
    outcomes = sorted(run.outcome for run in runs)
    assert outcomes in (["ok", "skipped"], ["nothing_new", "ok"]), logs
    assert {run.trigger for run in runs} == {"schedule"}
    with db.session() as session:
        assert session.execute(select(Edition.id, Edition.state)).all() == [(1, "sent")]
        assert session.scalars(select(OutboxRow.state)).all() == ["sent", "sent"]
    assert sorted(smtp_server.delivered_to()) == readers


def test_the_scheduler_script_reports_bad_settings_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text('[schedule]\ncron = "elke dinsdag"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "scheduler.py", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "schedule.cron: not a crontab expression" in line
