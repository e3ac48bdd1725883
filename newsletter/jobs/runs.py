"""The record of every run of the job: when, why, how it ended, what it did, what went wrong.

    running ──> ok            a draft was made (and sent, or shown to staff)
       │   ├──> nothing_new   too little was new for a draft
       │   └──> failed        a step raised; `error` says which and why
       └──> failed            interrupted: the process stopped before the run finished
    skipped                   another run held the lock; recorded finished at once

A run is inserted only once it holds the job's lock, so a row still `running` that the
lock holder sees belongs to a process that died: it is closed as interrupted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.models import Base

TRIGGERS = ("cli", "schedule")
OUTCOMES = ("running", "ok", "nothing_new", "failed", "skipped")
FINISHED_OUTCOMES = OUTCOMES[1:]
INTERRUPTED = "interrupted: the process stopped before the run finished"


class Run(Base):
    """One run of the job, from `newsletter run` or the scheduler."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("trigger IN ('cli', 'schedule')", name="trigger"),
        CheckConstraint(
            "outcome IN ('running', 'ok', 'nothing_new', 'failed', 'skipped')", name="outcome"
        ),
        Index("ix_runs_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    trigger: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    # What the run did, as numbers (see jobs/report.py, RunCounts); {} until it finishes.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


def start_run(session: Session, *, trigger: str, now: datetime) -> int:
    """Insert a run in progress; its number."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    run = Run(started_at=now, trigger=trigger, outcome="running", counts={})
    session.add(run)
    session.flush()
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    *,
    outcome: str,
    counts: dict[str, Any],
    error: str | None,
    now: datetime,
) -> None:
    """Record how run `run_id` ended."""
    if outcome not in FINISHED_OUTCOMES:
        raise ValueError(f"not a final outcome: {outcome!r}")
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(outcome=outcome, counts=counts, error=error, finished_at=now)
        .execution_options(synchronize_session=False)
    )


def record_skipped(session: Session, *, trigger: str, reason: str, now: datetime) -> int:
    """A run that did not start because another one held the lock; its number."""
    run = Run(
        started_at=now,
        finished_at=now,
        trigger=trigger,
        outcome="skipped",
        counts={},
        error=reason,
    )
    session.add(run)
    session.flush()
    return run.id


def close_interrupted_runs(session: Session, *, except_run: int) -> list[int]:
    """Mark runs left `running` by a process that died as failed; their numbers.

    Only the holder of the job's lock may call this: then no other run is in progress.
    """
    ids = list(
        session.scalars(
            select(Run.id).where(Run.outcome == "running", Run.id != except_run).order_by(Run.id)
        )
    )
    if ids:
        session.execute(
            update(Run)
            .where(Run.id.in_(ids))
            .values(outcome="failed", error=INTERRUPTED)
            .execution_options(synchronize_session=False)
        )
    return ids


def list_runs(session: Session, *, limit: int = 20) -> list[Run]:
    """The newest `limit` runs, newest first."""
    return list(session.scalars(select(Run).order_by(Run.id.desc()).limit(limit)))


def run_json(run: Run) -> dict[str, Any]:
    """A run as plain data, for `newsletter runs --json` and the admin pages."""
    return {
        "id": run.id,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "trigger": run.trigger,
        "outcome": run.outcome,
        "counts": run.counts,
        "error": run.error,
    }
