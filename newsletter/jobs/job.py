"""The job: one run of everything the newsletter does by itself, recorded in `runs`.

    lock ─> retry waiting deliveries ─> read the return mailbox ([bounces]) ─> fetch
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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import NewsletterError, StorageError
from newsletter.core.numbers import dutch_number
from newsletter.core.templating import render_template, template_environment
from newsletter.core.text import one_line
from newsletter.delivery.copies import send_test
from newsletter.delivery.due import editions_waiting
from newsletter.delivery.send import send_edition
from newsletter.editions.drafting import draft_edition, fetch_all
from newsletter.editions.lifecycle import OPEN_STATES, get_edition, new_article_candidates
from newsletter.editions.models import Edition
from newsletter.jobs.locking import LockTaken, try_lock
from newsletter.jobs.runs import close_interrupted_runs, finish_run, record_skipped, start_run
from newsletter.mail.mailer import OutgoingMail, SmtpMailer
from newsletter.returns.mailboxes import open_return_mailbox
from newsletter.returns.process import process_return_mailbox
from newsletter.staff.accounts import purge_sessions
from subscribers.management import ListManagement

logger = logging.getLogger(__name__)
# The run's report says what failed; its log lines are for the scheduler, which sets up
# logging. Without this, Python would print them (and tracebacks) after `newsletter run`.
logger.addHandler(logging.NullHandler())

MailStaff = Callable[[OutgoingMail], None]


@dataclass
class RunCounts:
    """What a run did, in numbers; stored as the run's `counts`."""

    retried: dict[str, int] = field(default_factory=dict)  # edition -> sent on retry
    feeds: int = 0
    feeds_failed: int = 0
    new_articles: int = 0
    edition: int | None = None  # the draft this run made
    current_draft: int | None = None  # nothing new since this open draft
    sent: int | None = None  # auto_send: the new edition's counts
    failed_permanently: int = 0
    waiting: int = 0
    staff: int | None = None  # test copy and review link went to this many staff
    purged_subscribers: int = 0
    purged_tokens: int = 0
    returned: int | None = None  # mails read from the return mailbox ([bounces] set)
    returned_suppressed: int = 0  # addresses they bounced, marked complained or unsubscribed
    returned_unknown: int = 0  # not understood: kept for a person to look at
    failed_steps: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunCounts:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})


def summary_line(run_id: int, outcome: str, counts: RunCounts, error: str | None) -> str:
    """One line on what a run did, e.g. "run 12: fetched 1 feed (3 new), drafted edition 4"."""
    if outcome == "skipped":
        return f"run {run_id}: skipped, {error or 'another run was in progress'}"
    if outcome == "running":
        return f"run {run_id}: running"
    parts = [
        f"retried edition {number} ({dutch_number(sent)} sent)"
        for number, sent in counts.retried.items()
    ]
    if counts.feeds:
        failed = f", {counts.feeds_failed} failed" if counts.feeds_failed else ""
        plural = "" if counts.feeds == 1 else "s"
        parts.append(f"fetched {counts.feeds} feed{plural} ({counts.new_articles} new{failed})")
    if counts.edition is not None:
        parts.append(f"drafted edition {counts.edition}")
    elif counts.current_draft is not None:
        parts.append(f"nothing new since draft {counts.current_draft}")
    elif "draft" not in counts.failed_steps:
        parts.append("nothing new")
    if counts.sent is not None:
        sent = f"sent {dutch_number(counts.sent)}"
        if counts.failed_permanently:
            sent += f", {dutch_number(counts.failed_permanently)} failed permanently"
        if counts.waiting:
            sent += f", {dutch_number(counts.waiting)} waiting for retry"
        parts.append(sent)
    if counts.staff == 0:
        parts.append("no staff to tell (set [schedule] staff)")
    elif counts.staff is not None:
        parts.append(f"test copy and review link to {counts.staff} staff")
    if counts.returned:
        plural = "" if counts.returned == 1 else "s"
        parts.append(
            f"read {dutch_number(counts.returned)} returned mail{plural} "
            f"({counts.returned_suppressed} suppressed, "
            f"{counts.returned_unknown} not understood)"
        )
    if counts.purged_subscribers or counts.purged_tokens:
        parts.append(
            f"purged {counts.purged_subscribers} unconfirmed, {counts.purged_tokens} expired tokens"
        )
    if outcome == "failed":
        parts.append(f"failed: {error}")
    return f"run {run_id}: " + ", ".join(parts)


@dataclass(frozen=True)
class RunReport:
    """How a run ended; `summary` is the line the CLI prints and the scheduler logs."""

    run_id: int
    trigger: str
    outcome: str  # ok, nothing_new, failed, skipped
    counts: RunCounts
    errors: tuple[tuple[str, str], ...]  # (step, message) of each step that failed
    started_at: datetime
    finished_at: datetime
    skipped_because: str | None = None

    @property
    def error(self) -> str | None:
        """What the run's record keeps as its error: every failure, or why it was skipped."""
        if self.skipped_because is not None:
            return self.skipped_because
        return "; ".join(f"{step}: {message}" for step, message in self.errors) or None

    @property
    def summary(self) -> str:
        return summary_line(self.run_id, self.outcome, self.counts, self.error)

    @property
    def exit_code(self) -> int:
        return 1 if self.outcome == "failed" else 0


def review_url(settings: Settings, number: int) -> str:
    """Where staff review draft `number` in the admin pages."""
    return f"{settings.site.base_url}/admin/editions/{number}"


def _staff_mail(settings: Settings, name: str, to: str, values: dict[str, Any]) -> OutgoingMail:
    environment = template_environment(settings)
    context = {"site": settings.site, **values}
    subject = one_line(render_template(environment, f"email/{name}.subject.txt.j2", context))
    text = render_template(environment, f"email/{name}.txt.j2", context)
    return OutgoingMail(to=to, subject=subject, text=text, kind="staff")


def draft_ready_mail(
    settings: Settings, to: str, *, number: int, subject: str, articles: int
) -> OutgoingMail:
    """Tells staff that draft `number` waits for review, with the link to it."""
    values = {
        "number": number,
        "subject": subject,
        "articles": articles,
        "review_url": review_url(settings, number),
    }
    return _staff_mail(settings, "draft_ready", to, values)


def run_failed_mail(settings: Settings, to: str, report: RunReport) -> OutgoingMail:
    """Tells staff that a run failed, with each failing step's error."""
    values = {
        "run_id": report.run_id,
        "started": report.started_at.astimezone(ZoneInfo(settings.site.timezone)),
        "trigger": report.trigger,
        "errors": list(report.errors),
        "summary": report.summary,
    }
    return _staff_mail(settings, "run_failed", to, values)


def current_draft(session: Session, *, min_new_articles: int) -> int | None:
    """The newest open draft, when fewer articles than a draft needs came in after it."""
    draft = session.scalars(
        select(Edition).where(Edition.state.in_(OPEN_STATES)).order_by(Edition.id.desc()).limit(1)
    ).first()
    if draft is None:
        return None
    newer = sum(
        1
        for candidate in new_article_candidates(session)
        if candidate.first_seen_at > draft.created_at
    )
    return draft.id if newer < max(1, min_new_articles) else None


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

    `send` overrides `[schedule] auto_send`; `mail` delivers the staff mails (default:
    the SMTP server of the settings). Raises StorageError only when the run cannot even
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
    if settings.bounces.maildir is not None or settings.bounces.imap_host is not None:
        with steps.step("bounces"):
            _read_returns(settings, database, steps.counts, clock=clock)
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
    settings: Settings, database: Database, counts: RunCounts, *, clock: Clock
) -> None:
    """Act on bounces, complaints and mailto unsubscribes before anything is sent."""
    with open_return_mailbox(settings) as mailbox:
        report = process_return_mailbox(settings, database, mailbox=mailbox, clock=clock)
    counts.returned = report.messages
    counts.returned_suppressed = report.suppressed
    counts.returned_unknown = report.not_understood


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
