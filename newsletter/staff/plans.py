"""Planned sends as staff make them: approve without sending, plan a moment, cancel it.

The date and time come from a form in `[site] timezone` and are kept in UTC
(editions/planning.py); the job or the scheduler's minute check sends the edition then.
"""

from __future__ import annotations

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.editions import changes, planning
from newsletter.editions.planning import PlannedSend


class EditionPlans:
    """Approves and plans editions for the staff pages; safe to use from several threads."""

    def __init__(self, settings: Settings, database: Database, *, clock: Clock) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock

    def approve(self, number: int) -> None:
        """Approve edition `number` without sending it; EditionError when it is not open."""
        with self._database.session() as session:
            changes.approve(session, number, now=self._clock())

    def plan(self, number: int, *, day: str, time_of_day: str, planned_by: str) -> None:
        """Plan approved edition `number` for `day` at `time_of_day`, local time;
        PlanError when the time is not valid or has passed, or it is not approved."""
        send_at = planning.local_moment(day, time_of_day, timezone=self._settings.site.timezone)
        with self._database.session() as session:
            planning.plan_send(
                session, number, send_at=send_at, planned_by=planned_by, now=self._clock()
            )

    def cancel(self, number: int) -> None:
        """Take the plan of edition `number` back; it stays approved."""
        with self._database.session() as session:
            planning.cancel_plan(session, number, now=self._clock())

    def planned(self) -> list[PlannedSend]:
        """The planned editions, the first due first."""
        with self._database.session() as session:
            return planning.planned_sends(session)
