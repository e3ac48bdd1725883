"""Sending the planned editions whose time has come, from the job or from the scheduler.

The job (jobs/job.py) sends them as one of its steps, under its lock. Between the
job's runs the scheduler checks every minute (`check_planned_sends`), taking the same
job lock: a run or a send in progress means this check waits for the next minute.
A plan that fails halfway leaves the edition `sending`; the next run resumes it as any
interrupted send.
"""

from __future__ import annotations

import logging
from pathlib import Path

from newsletter.core.clock import Clock, utc_now
from newsletter.core.config import Settings, load_settings
from newsletter.core.db import Database, open_database
from newsletter.core.errors import NewsletterError
from newsletter.delivery.send import SendSummary, send_edition
from newsletter.editions.planning import due_sends
from newsletter.jobs.locking import LockTaken, try_lock

logger = logging.getLogger(__name__)

# Found by name by the scheduler, so it must stay importable.
CHECK_FUNCTION = "newsletter.jobs.planned:check_planned_sends"


def send_due_plans(settings: Settings, database: Database, *, clock: Clock) -> list[SendSummary]:
    """Send every planned edition that is due; the caller holds the job lock."""
    with database.session() as session:
        due = due_sends(session, now=clock())
    summaries = []
    for number in due:
        logger.info("edition %d: its planned time has come; sending", number)
        summaries.append(send_edition(settings, database, number, clock=clock))
    return summaries


def send_planned_now(
    settings: Settings, database: Database, *, clock: Clock
) -> list[SendSummary] | None:
    """Take the job lock and send what is due; None when someone else holds the lock."""
    with database.session() as session:
        if not due_sends(session, now=clock()):
            return []
    held = try_lock(database, clock=clock)
    if isinstance(held, LockTaken):
        logger.info("a planned send waits: %s", held.describe())
        return None
    try:
        return send_due_plans(settings, database, clock=clock)
    finally:
        held.release()


def check_planned_sends(config_path: str) -> None:
    """The scheduler's minute check; logs how it went and never raises."""
    try:
        settings = load_settings(Path(config_path))
        database = open_database(settings.database_url)
        try:
            sent = send_planned_now(settings, database, clock=utc_now)
        finally:
            database.dispose()
    except NewsletterError as exc:
        logger.error("a planned send failed: %s", exc)
        return
    except Exception:  # never let a send take the scheduler down
        logger.exception("the planned-send check crashed")
        return
    for summary in sent or ():
        logger.info("planned edition %d: %d sent", summary.number, summary.run.sent)
