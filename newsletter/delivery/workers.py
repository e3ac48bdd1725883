"""Send workers: deliver whatever is due, several processes at once.

A worker looks for editions that are `sending` with deliveries due (those `newsletter
send N --workers` handed over, retries whose time came, rows a dead sender left) and
delivers each with the engine of delivery/engine.py and the outbox store of
delivery/store.py, the same as `newsletter send`. It does not take the job lock: any
number of workers, on one machine or several sharing the database, work on one edition
together.

Why that is safe, step by step (what `send_edition` does, with N processes at once):

- Snapshot (`prepare_send`): adds outbox rows only for subscribers who have none yet. Two
  workers adding the same late subscriber at the same moment: the unique constraint
  refuses the second insert; that worker starts over once and finds the row there.
- Claims (`claim_rows`): one statement writes the claim token and lease into the rows it
  takes (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so workers never wait for each other's
  rows; SQLite: one writer at a time). No row is ever held by two workers.
- Outcomes: written only `WHERE claim = ours AND state = 'sending'`, each before the
  connection's next message; a worker whose lease ran out cannot overwrite the row.
- Dead workers: their rows come back when the lease (2 minutes) runs out. A worker on
  the same host hands them back at once (the claim token names host and pid): every
  pass starts with `release_dead_claims` for every edition being sent.
- Finishing: the worker that sees no open row left marks the edition `sent`; two doing
  it at once both write `sent`, which is harmless.
- Pacing: `[smtp] rate_per_second` and `[delivery] max_per_hour` hold per worker. Each
  worker starts from what the database says went out in the last hour, then counts only
  its own messages, so N workers may send up to N times either limit; divide the
  relay's limits by the number of workers (docs/scaling.md).

A stop request (SIGTERM, SIGINT) lets a worker finish its current batch and give back
the rest; a second signal ends the process at once, and its rows come back as for a
dead worker. The crash bound stays the engine's: a killed worker can repeat at most one
message per connection it had open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import EXIT_WAITING, EditionError, NewsletterError, StorageError
from newsletter.delivery.due import editions_waiting
from newsletter.delivery.engine import RunTotals
from newsletter.delivery.outbox import DEFAULT_POLL_SECONDS, release_dead_claims, state_counts
from newsletter.delivery.send import SendSummary, deliver_prepared, prepare_send
from newsletter.editions.compose import EditionContent
from newsletter.editions.lifecycle import get_edition
from newsletter.editions.models import Edition

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

# After a pass with errors (the relay or the database is down) a worker waits longer,
# doubling up to this, instead of trying again every few seconds for hours.
MAX_BACKOFF_SECONDS = 300.0


def _prepare(
    settings: Settings, database: Database, number: int, *, now: datetime
) -> EditionContent | None:
    """`prepare_send` for an edition being sent; None when another worker finished it
    meanwhile (then there is nothing left to do, which is no error)."""
    for attempt in range(2):
        try:
            return prepare_send(settings, database, number, now=now)
        except IntegrityError:
            # Another worker added the same late subscriber at the same moment; the row
            # is there now.
            if attempt:
                raise
        except EditionError:
            with database.session() as session:
                if get_edition(session, number).state == "sent":
                    return None
            raise
    return None


async def deliver_edition(
    settings: Settings,
    database: Database,
    number: int,
    *,
    clock: Clock,
    stop: asyncio.Event,
    on_progress: Callable[[RunTotals], None] | None = None,
) -> SendSummary:
    """Deliver edition N's due rows alongside any other worker, until none is left or
    `stop` is set. Unlike `send_edition` (delivery/send.py), an edition that is not
    `sending` is left alone: only staff hand one over."""
    with database.session() as session:
        state = get_edition(session, number).state
        if state != "sending":
            counts = state_counts(session, number)
            return SendSummary(number, counts, RunTotals(), finished=state == "sent")
    content = _prepare(settings, database, number, now=clock())
    if content is None:
        with database.session() as session:
            return SendSummary(number, state_counts(session, number), RunTotals(), finished=True)
    return await deliver_prepared(
        settings, database, content, clock=clock, on_progress=on_progress, stop=stop
    )


@dataclass(frozen=True)
class EditionHandled:
    """What one worker did for one edition: its summary, or the error that stopped it."""

    number: int
    summary: SendSummary | None = None
    error: str | None = None

    @property
    def attempted(self) -> int:
        """Messages this worker tried (sent, failed or to retry)."""
        if self.summary is None:
            return 0
        run = self.summary.run
        return run.sent + run.failed + run.retry

    @property
    def exit_code(self) -> int:
        """As `newsletter send`: 0 all out, 1 failures or an error, 75 some still wait."""
        if self.summary is None or self.summary.counts.failed:
            return 1
        return 0 if self.summary.finished else EXIT_WAITING


def _due_editions(database: Database, *, now: datetime) -> list[int]:
    """Hand back the rows of dead senders on this host, then list the editions due."""
    try:
        with database.session() as session:
            sending = session.scalars(select(Edition.id).where(Edition.state == "sending"))
            for number in sending.all():
                release_dead_claims(session, number, now=now)
        with database.session() as session:
            return editions_waiting(session, now=now)
    except SQLAlchemyError as exc:
        raise StorageError(
            f"cannot look for editions to send: {exc.__class__.__name__}: {exc}"
        ) from exc


async def deliver_due(
    settings: Settings,
    database: Database,
    *,
    clock: Clock,
    stop: asyncio.Event,
    on_edition: Callable[[EditionHandled], None] | None = None,
) -> list[EditionHandled]:
    """One pass: every edition with deliveries due now, one after the other.

    An edition that fails (the relay cannot be reached, a template breaks) is reported
    and the others still go; raises StorageError only when the database cannot even be
    asked what is due.
    """
    handled = []
    for number in _due_editions(database, now=clock()):
        if stop.is_set():
            break
        try:
            summary = await deliver_edition(settings, database, number, clock=clock, stop=stop)
            result = EditionHandled(number, summary=summary)
        except NewsletterError as exc:
            result = EditionHandled(number, error=str(exc))
        except SQLAlchemyError as exc:  # the database went away mid-send: try again later
            result = EditionHandled(number, error=f"{exc.__class__.__name__}: {exc}")
        except Exception as exc:  # a bug: reported, and the worker goes on with the rest
            logger.exception("edition %d: unexpected error", number)
            result = EditionHandled(number, error=f"{exc.__class__.__name__}: {exc}")
        handled.append(result)
        if on_edition is not None:
            on_edition(result)
    return handled


@dataclass(frozen=True)
class WorkerReport:
    """How a worker ended: the last word on each edition it handled."""

    editions: dict[int, EditionHandled]

    @property
    def exit_code(self) -> int:
        codes = {result.exit_code for result in self.editions.values()}
        if 1 in codes:
            return 1
        return EXIT_WAITING if EXIT_WAITING in codes else 0


def _pause(poll_seconds: float, failures: int) -> float:
    """The poll interval, doubled for each pass in a row that had errors (with a cap)."""
    backoff: float = poll_seconds * 2.0 ** min(failures, 16)
    return min(backoff, max(MAX_BACKOFF_SECONDS, poll_seconds))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_worker(
    settings: Settings,
    database: Database,
    *,
    clock: Clock,
    stop: asyncio.Event,
    once: bool = False,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    on_edition: Callable[[EditionHandled], None] | None = None,
) -> WorkerReport:
    """Deliver what is due, pass after pass, until `stop` is set (or, with `once`, until
    a pass finds nothing more to do).

    A pass that got messages out is followed at once by the next (rows a dead worker
    left, or the retries that came due meanwhile); otherwise the worker sleeps
    `poll_seconds`, longer after errors. With `once`, a database that cannot be reached
    raises StorageError; without, it is logged and tried again.
    """
    last: dict[int, EditionHandled] = {}
    failures = 0
    while not stop.is_set():
        try:
            handled = await deliver_due(
                settings, database, clock=clock, stop=stop, on_edition=on_edition
            )
        except StorageError as exc:
            if once:
                raise
            logger.warning("%s", exc)
            failures += 1
            await _wait(stop, _pause(poll_seconds, failures))
            continue
        last.update((result.number, result) for result in handled)
        errors = any(result.error for result in handled)
        failures = failures + 1 if errors else 0
        if any(result.attempted for result in handled) and not errors:
            continue  # more may be due right away
        if once:
            break
        await _wait(stop, _pause(poll_seconds, failures))
    return WorkerReport(last)
