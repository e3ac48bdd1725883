"""A database the scheduler wrote before the restructure keeps its job after the upgrade.

APScheduler stores the job as a pickled dict naming its function by import path. The
row in tests/data/legacy/ was written by the scheduler as it stood before the modules
moved (`newsletter.scheduling:scheduled_run`); migration 0008 points it at the new path.
Without that, APScheduler cannot load the job, drops it with its next run time, and a
run missed while the scheduler was down is never made up.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import insert, select

from newsletter.core.config import settings_from_mapping
from newsletter.core.db import create_db_engine, open_database, upgrade_schema
from newsletter.jobs.runs import Run
from newsletter.jobs.scheduler import (
    JOB_FUNCTION,
    JOB_ID,
    build_scheduler,
    next_scheduled_run,
    scheduled_run,
    scheduler_jobs,
)
from tests.support.paths import DATA_DIR, SEEDS_FEED
from tests.support.waiting import wait_until

LEGACY_JOB = DATA_DIR / "legacy" / "scheduler-job-0007.json"
SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture
def legacy_database(database_url: str) -> Iterator[str]:
    """A database at revision 0007 holding the job row the old scheduler wrote."""
    row = json.loads(LEGACY_JOB.read_text())
    engine = create_db_engine(database_url)
    try:
        upgrade_schema(engine, revision=row["revision"])
        with engine.begin() as connection:
            connection.execute(
                insert(scheduler_jobs).values(
                    id=row["id"],
                    next_run_time=row["next_run_time"],
                    job_state=bytes.fromhex(row["job_state_hex"]),
                )
            )
    finally:
        engine.dispose()
    yield database_url


def stored_state(database_url: str) -> dict[str, Any]:
    database = open_database(database_url, upgrade=False)
    try:
        with database.session() as session:
            blob = session.scalar(select(scheduler_jobs.c.job_state))
    finally:
        database.dispose()
    assert blob is not None
    state: dict[str, Any] = pickle.loads(blob)
    return state


def test_the_old_row_names_the_old_module(legacy_database: str) -> None:
    assert stored_state(legacy_database)["func"] == "newsletter.scheduling:scheduled_run"


def test_the_upgrade_points_the_job_at_the_moved_function(legacy_database: str) -> None:
    before = stored_state(legacy_database)
    database = open_database(legacy_database)  # upgrades to head, as every command does
    try:
        with database.session() as session:
            next_run = next_scheduled_run(session)
    finally:
        database.dispose()
    after = stored_state(legacy_database)
    assert after["func"] == JOB_FUNCTION == "newsletter.jobs.scheduler:scheduled_run"
    # Everything else of the job is as the old scheduler left it.
    assert {k: repr(v) for k, v in after.items() if k != "func"} == {
        k: repr(v) for k, v in before.items() if k != "func"
    }
    assert next_run == datetime(2026, 12, 8, 8, 0, tzinfo=UTC)


def test_after_the_upgrade_the_scheduler_makes_up_the_missed_run_with_the_real_job(
    legacy_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old job was started with config_path "newsletter.toml": relative to the
    # scheduler's working folder, as run_scheduler is given it there.
    (tmp_path / "newsletter.toml").write_text(
        f'[database]\nurl = "{legacy_database}"\n[feed]\nurls = ["{SEEDS_FEED}"]\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    settings = settings_from_mapping(
        {"database": {"url": legacy_database}}, base_dir=tmp_path, env={}
    )
    database = open_database(legacy_database)
    ran = threading.Event()
    events: list[JobExecutionEvent] = []

    def note(event: JobExecutionEvent) -> None:
        events.append(event)
        ran.set()

    # Tuesday 8 December, 09:30 in Amsterdam: the stored 09:00 run was missed while the
    # scheduler was down for the upgrade, and is still within the hour of grace.
    try:
        with time_machine.travel(datetime(2026, 12, 8, 8, 30, tzinfo=UTC), tick=True):
            scheduler = build_scheduler(
                settings,
                engine=database.engine,
                config_path=Path("newsletter.toml"),
                scheduler_class=BackgroundScheduler,
            )
            scheduler.add_listener(note, EVENT_JOB_EXECUTED)
            scheduler.start()
            try:
                wait_until(ran.is_set, what="the scheduler to run the stored job")
            finally:
                scheduler.shutdown()
        with database.session() as session:
            runs = session.scalars(select(Run)).all()
            next_run = next_scheduled_run(session)
    finally:
        database.dispose()
    [event] = events
    assert event.job_id == JOB_ID
    assert event.scheduled_run_time == datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
    [run] = runs
    assert (run.trigger, run.outcome) == ("schedule", "ok"), run.error
    assert next_run == datetime(2026, 12, 15, 8, 0, tzinfo=UTC)


def test_the_job_function_the_row_names_is_the_scheduled_run() -> None:
    module, _, name = JOB_FUNCTION.partition(":")
    imported = __import__(module, fromlist=[name])
    assert getattr(imported, name) is scheduled_run
