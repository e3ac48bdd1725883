"""The job: one run of everything the newsletter does by itself, recorded in `runs`.

    lock ─> retry waiting deliveries ─> send planned editions that are due
         ─> read the return mailbox ([bounces]) ─> fetch
         ─> draft ─┬─> send            (auto_send)
                   └─> test copy + review link
         ─> purge unconfirmed sign-ups, expired tokens and staff sessions
         ─> record ─> failed? mail staff

Every step runs on its own: one that fails is recorded with its error and the others
still run (a broken feed does not hold up last week's retries or the purge); only a
draft that failed leaves nothing to send. The run has failed when any step did, and
the staff then get one mail about it. Recipients a send could not reach are counted,
not failures of the run: the delivery engine has dealt with them (bounced, or waiting
for a retry that the next run makes). When another run holds the lock, this one does
nothing and is recorded as skipped.

A draft is made only when enough is new since the open draft, if there is one: the
weekly run does not replace a draft that staff are still reviewing, nor mail them
about it again, unless new articles came in. Only a draft this run made is sent.

Settings, database, clock and the way to mail staff are passed in; the steps do their
own I/O (HTTP for the feeds, SMTP for the send) where the settings point them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from newsletter.content.ingest import fetch_all
from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import NewsletterError, StorageError
from newsletter.delivery.copies import send_test
from newsletter.delivery.due import editions_waiting
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import current_draft, draft_edition
from newsletter.editions.lifecycle import get_edition
from newsletter.jobs.locking import LockTaken, try_lock
from newsletter.jobs.planned import send_due_plans
from newsletter.jobs.report import RunCounts, RunReport
from newsletter.jobs.runs import close_interrupted_runs, finish_run, record_skipped, start_run
from newsletter.jobs.staff_mails import draft_ready_mail, run_failed_mail
from newsletter.mail.mailer import OutgoingMail, SmtpMailer
from newsletter.returns.mailboxes import open_return_mailbox
from newsletter.returns.process import handle_returns
from newsletter.staff.accounts import purge_sessions
from subscribers.management import ListManagement

logger = logging.getLogger(__name__)
# The run's report says what failed; its log lines are for the scheduler, which sets up
# logging. Without this, Python would print them (and tracebacks) after `newsletter run`.
logger.addHandler(logging.NullHandler())

MailStaff = Callable[[OutgoingMail], None]


class _Steps:
    """Runs each step, collecting what failed instead of stopping."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.counts = RunCounts()
        self.errors: list[tuple[str, str]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        try:
            yield
        except NewsletterError as exc:
            self._failed(name, str(exc))
        except Exception as exc:  # a bug or an unexpected outage: recorded, never fatal
            self._failed(name, f"{type(exc).__name__}: {exc}", trace=exc)

    def _failed(self, name: str, message: str, trace: Exception | None = None) -> None:
        message = " ".join(message.split()) or "failed"
        self.errors.append((name, message))
        self.counts.failed_steps.append(name.split(" ")[0])
        logger.log(
            logging.ERROR if trace else logging.WARNING,
            "run %d: %s failed: %s",
            self.run_id,
            name,
            message,
            exc_info=trace,
        )


def _record_skipped(database: Database, *, trigger: str, reason: str, now: datetime) -> int:
    try:
        with database.session() as session:
            return record_skipped(session, trigger=trigger, reason=reason, now=now)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot record the run: {exc.__class__.__name__}: {exc}") from exc


def _record_start(database: Database, *, trigger: str, now: datetime) -> int:
    """Insert the run; close runs a dead process left running (we hold the lock)."""
    try:
        with database.session() as session:
            run_id = start_run(session, trigger=trigger, now=now)
            interrupted = close_interrupted_runs(session, except_run=run_id)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot record the run: {exc.__class__.__name__}: {exc}") from exc
    for number in interrupted:
        logger.warning("run %d had been interrupted; recorded as failed", number)
    return run_id


def run_job(
    settings: Settings,
    database: Database,
    *,
    clock: Clock,
    trigger: str,
    send: bool | None = None,
    mail: MailStaff | None = None,
) -> RunReport:
    """Run the whole job once, unless another run holds the lock; never raises for a step.

    `send` overrides `[schedule] auto_send`; `mail` delivers the single mails of the run,
    to staff and the probes of the return mailbox (default: the SMTP server of the
    settings). Raises StorageError only when the run cannot even
    be recorded.
    """
    started = clock()
    held = try_lock(database, clock=clock)
    if isinstance(held, LockTaken):
        reason = held.describe()
        run_id = _record_skipped(database, trigger=trigger, reason=reason, now=started)
        return RunReport(
            run_id, trigger, "skipped", RunCounts(), (), started, started, skipped_because=reason
        )
    try:
        steps = _Steps(_record_start(database, trigger=trigger, now=started))
        auto_send = settings.schedule.auto_send if send is None else send
        _run_steps(settings, database, steps, clock=clock, auto_send=auto_send, mail=mail)
        report = _finish(database, steps, trigger=trigger, started=started, clock=clock)
        if report.outcome == "failed":
            _tell_staff_of_failure(settings, report, mail or _smtp_mail(settings, clock))
        return report
    finally:
        held.release()


def _smtp_mail(settings: Settings, clock: Clock) -> MailStaff:
    return SmtpMailer(settings, clock=clock).send_now


def _run_steps(
    settings: Settings,
    database: Database,
    steps: _Steps,
    *,
    clock: Clock,
    auto_send: bool,
    mail: MailStaff | None,
) -> None:
    _retry_waiting(settings, database, steps, clock=clock)
    with steps.step("planned"):
        for summary in send_due_plans(settings, database, clock=clock):
            steps.counts.planned[str(summary.number)] = summary.run.sent
    if settings.bounces.maildir is not None or settings.bounces.imap_host is not None:
        with steps.step("bounces"):
            send = mail or _smtp_mail(settings, clock)
            _read_returns(settings, database, steps.counts, clock=clock, mail=send)
    with steps.step("fetch"):
        _fetch(settings, database, steps.counts, clock=clock)
    with steps.step("draft"):
        _draft(settings, database, steps.counts, clock=clock)
    edition = steps.counts.edition
    if edition is not None and auto_send:
        with steps.step("send"):
            sent = send_edition(settings, database, edition, clock=clock)
            steps.counts.sent = sent.counts.sent
            steps.counts.failed_permanently = sent.counts.failed
            steps.counts.waiting = sent.counts.open
    elif edition is not None:
        with steps.step("staff review"):
            steps.counts.staff = _show_staff(
                settings, database, edition, clock=clock, mail=mail or _smtp_mail(settings, clock)
            )
    with steps.step("purge"):
        people = ListManagement(settings, database, clock=clock)
        steps.counts.purged_subscribers = people.purge_unconfirmed()
        steps.counts.purged_tokens = people.purge_expired_tokens()
        with database.session() as session:
            purge_sessions(
                session,
                now=clock(),
                idle=timedelta(minutes=settings.web.staff_idle_minutes),
                lifetime=timedelta(hours=settings.web.staff_session_hours),
            )


def _retry_waiting(settings: Settings, database: Database, steps: _Steps, *, clock: Clock) -> None:
    """Resume every edition whose deliveries are due (retries, or a send that stopped)."""
    waiting: list[int] = []
    with steps.step("retry"), database.session() as session:
        waiting = editions_waiting(session, now=clock())
    for number in waiting:
        with steps.step(f"retry edition {number}"):
            summary = send_edition(settings, database, number, clock=clock)
            steps.counts.retried[str(number)] = summary.run.sent


def _read_returns(
    settings: Settings, database: Database, counts: RunCounts, *, clock: Clock, mail: MailStaff
) -> None:
    """Act on bounces, complaints and mailto unsubscribes before anything is sent, and
    send the probes that are due."""
    with open_return_mailbox(settings) as mailbox:
        report = handle_returns(settings, database, mailbox=mailbox, clock=clock, send=mail)
    counts.returned = report.messages
    counts.returned_suppressed = report.suppressed
    counts.returned_unknown = report.not_understood
    counts.probes_sent = report.probes_sent


def _fetch(settings: Settings, database: Database, counts: RunCounts, *, clock: Clock) -> None:
    reports = fetch_all(settings, database, clock=clock)
    counts.feeds = len(reports)
    counts.new_articles = sum(report.new for report in reports)
    failed = [report for report in reports if report.failed]
    counts.feeds_failed = len(failed)
    if failed:
        raise NewsletterError("; ".join(f"{report.source}: {report.error}" for report in failed))


def _draft(settings: Settings, database: Database, counts: RunCounts, *, clock: Clock) -> None:
    """A new draft when enough is new, also since the open draft staff may be reviewing."""
    with database.session() as session:
        counts.current_draft = current_draft(
            session, min_new_articles=settings.feed.min_new_articles
        )
    if counts.current_draft is None:
        counts.edition = draft_edition(settings, database, clock=clock).number


def _show_staff(
    settings: Settings, database: Database, number: int, *, clock: Clock, mail: MailStaff
) -> int:
    """A test copy of draft `number` to every staff address, and a mail with its link."""
    staff = settings.schedule.staff
    if not staff:
        logger.warning("draft %d is ready, but [schedule] staff names nobody to tell", number)
        return 0
    send_test(settings, database, number, staff, clock=clock)
    with database.session() as session:
        edition = get_edition(session, number)
        subject, articles = edition.subject, len(edition.entries)
    for address in staff:
        mail(draft_ready_mail(settings, address, number=number, subject=subject, articles=articles))
    return len(staff)


def _finish(
    database: Database, steps: _Steps, *, trigger: str, started: datetime, clock: Clock
) -> RunReport:
    counts = steps.counts
    if steps.errors:
        outcome = "failed"
    elif counts.edition is not None:
        outcome = "ok"
    else:
        outcome = "nothing_new"
    report = RunReport(
        steps.run_id, trigger, outcome, counts, tuple(steps.errors), started, clock()
    )
    try:
        with database.session() as session:
            finish_run(
                session,
                steps.run_id,
                outcome=outcome,
                counts=counts.as_json(),
                error=report.error,
                now=report.finished_at,
            )
    except SQLAlchemyError as exc:
        # The work is done; only its record is missing. The next run closes it as interrupted.
        logger.error("run %d: could not record how it ended: %s", steps.run_id, exc)
    return report


def _tell_staff_of_failure(settings: Settings, report: RunReport, mail: MailStaff) -> None:
    """One mail per staff address; a mail that fails is logged, never raised."""
    staff = settings.schedule.staff
    if not staff:
        logger.warning("run %d failed and [schedule] staff names nobody to tell", report.run_id)
    for address in staff:
        try:
            mail(run_failed_mail(settings, address, report))
        except Exception as exc:  # the run's own record already says what failed
            logger.warning("run %d: could not mail %s about it: %s", report.run_id, address, exc)
