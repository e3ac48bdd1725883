"""Planned sends: an approved edition goes out at a time staff chose, not at once.

Staff enter a date and a time of day in `[site] timezone`; the plan is kept in UTC on
the edition (`send_at`, `planned_by`). Only an approved edition can be planned, for a
moment still to come; a change to it takes the approval back and cancels the plan with
it (lifecycle.move_edition). The job (jobs/planned.py) sends each plan once its time
has come. Refusals carry a `reason` code; the staff pages say it in Dutch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.errors import EditionError
from newsletter.editions.lifecycle import get_edition
from newsletter.editions.models import Edition

PlanRefusal = Literal["invalid_time", "past", "not_approved"]


class PlanError(EditionError):
    """A plan refused: `reason` says why (a PlanRefusal code)."""

    def __init__(self, reason: PlanRefusal, message: str) -> None:
        super().__init__(message)
        self.reason: PlanRefusal = reason


@dataclass(frozen=True)
class PlannedSend:
    """An approved edition waiting for its moment."""

    number: int
    subject: str
    send_at: datetime
    planned_by: str | None


def local_moment(day: str, time_of_day: str, *, timezone: str) -> datetime:
    """The UTC moment of `day` (YYYY-MM-DD) at `time_of_day` (HH:MM) in `timezone`.

    PlanError("invalid_time") when either does not parse. A time that a clock change
    skips or repeats is taken as the clock reads before the change (fold=0).
    """
    try:
        local = datetime.combine(
            date.fromisoformat(day.strip()), time.fromisoformat(time_of_day.strip())
        )
    except ValueError as exc:
        raise PlanError("invalid_time", f"not a date and time: {day!r} {time_of_day!r}") from exc
    return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def plan_send(
    session: Session, number: int, *, send_at: datetime, planned_by: str, now: datetime
) -> Edition:
    """Plan approved edition `number` to go out at `send_at`; PlanError when refused."""
    edition = get_edition(session, number)
    if edition.state != "approved":
        raise PlanError(
            "not_approved", f"edition {number} is {edition.state}; only an approved one is planned"
        )
    if send_at <= now:
        raise PlanError("past", f"{send_at.isoformat()} has passed already")
    edition.send_at, edition.planned_by = send_at, planned_by
    edition.updated_at = now
    return edition


def cancel_plan(session: Session, number: int, *, now: datetime) -> Edition:
    """Take the plan of edition `number` back; it stays approved. No plan: nothing changes."""
    edition = get_edition(session, number)
    if edition.send_at is not None and edition.state == "approved":
        edition.send_at = edition.planned_by = None
        edition.updated_at = now
    return edition


def planned_sends(session: Session) -> list[PlannedSend]:
    """Every approved edition with a plan, the first due first (for the dashboard)."""
    editions = session.scalars(
        select(Edition)
        .where(Edition.state == "approved", Edition.send_at.is_not(None))
        .order_by(Edition.send_at, Edition.id)
    )
    return [
        PlannedSend(edition.id, edition.subject, edition.send_at, edition.planned_by)
        for edition in editions
        if edition.send_at is not None
    ]


def due_sends(session: Session, *, now: datetime) -> list[int]:
    """The planned editions whose time has come, the first due first."""
    return [plan.number for plan in planned_sends(session) if plan.send_at <= now]
