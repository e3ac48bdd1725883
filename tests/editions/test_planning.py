"""Planned sends: local times to UTC, which editions may be planned, what cancels a plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.editions import changes
from newsletter.editions.lifecycle import get_edition
from newsletter.editions.planning import (
    PlanError,
    cancel_plan,
    due_sends,
    local_moment,
    plan_send,
    planned_sends,
)
from newsletter.jobs.scheduler import PLANNED_ID, build_scheduler
from tests.support.drafts import T0, add_articles, draft

AMSTERDAM = "Europe/Amsterdam"


def test_a_local_time_is_kept_in_utc_in_winter_and_in_summer() -> None:
    assert local_moment("2026-12-08", "09:00", timezone=AMSTERDAM) == datetime(
        2026, 12, 8, 8, 0, tzinfo=UTC
    )
    assert local_moment(" 2026-06-09 ", "09:00", timezone=AMSTERDAM) == datetime(
        2026, 6, 9, 7, 0, tzinfo=UTC
    )
    for day, time_of_day in (("2026-02-30", "09:00"), ("", "09:00"), ("2026-06-09", "9 uur")):
        with pytest.raises(PlanError) as refused:
            local_moment(day, time_of_day, timezone=AMSTERDAM)
        assert refused.value.reason == "invalid_time"


def test_only_an_approved_edition_is_planned_and_a_newer_draft_leaves_it(db: Database) -> None:
    now = T0 + timedelta(days=1)
    later = now + timedelta(hours=2)
    with db.session() as session:
        add_articles(session, 2, seen=T0)
        edition = draft(session, now)
        assert edition is not None
        number = edition.id
        with pytest.raises(PlanError) as refused:
            plan_send(session, number, send_at=later, planned_by="redactie", now=now)
        assert refused.value.reason == "not_approved"
        changes.approve(session, number, now=now)
        with pytest.raises(PlanError) as past:
            plan_send(session, number, send_at=now, planned_by="redactie", now=now)
        assert past.value.reason == "past"
        plan_send(session, number, send_at=later, planned_by="redactie", now=now)
        assert [plan.number for plan in planned_sends(session)] == [number]
        assert due_sends(session, now=later - timedelta(seconds=1)) == []
        assert due_sends(session, now=later) == [number]
        # The weekly run drafts again when more came in; the planned edition stays.
        add_articles(session, 2, seen=now + timedelta(minutes=5), start=10)
        assert draft(session, now + timedelta(minutes=10)) is not None
        assert edition.state == "approved" and edition.send_at == later
        cancel_plan(session, number, now=now)
        after = get_edition(session, number)
        assert after.state == "approved" and after.send_at is None
        assert planned_sends(session) == []


def test_the_scheduler_checks_for_planned_sends_every_minute(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    scheduler = build_scheduler(
        settings, engine=db.engine, config_path=tmp_path / "newsletter.toml"
    )
    job = scheduler.get_job(PLANNED_ID)
    assert job is not None and job.trigger.interval == timedelta(minutes=1)
