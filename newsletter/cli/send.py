"""`newsletter send` and `newsletter edition status`: delivering an edition, and its state.

`send N --workers` only hands the edition over: `newsletter worker` (cli/worker.py)
processes deliver it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from newsletter.cli.support import (
    AppContext,
    AsJson,
    EditionNumber,
    app_context,
    err,
    iso,
    out,
    print_json,
)
from newsletter.core.errors import EXIT_WAITING, InvalidInput, NewsletterError
from newsletter.core.numbers import dutch_number

if TYPE_CHECKING:  # the commands import the library when they run (see cli/app.py)
    from newsletter.delivery.engine import RunTotals
    from newsletter.delivery.send import SendSummary


class _LogProgress:
    """Plain progress lines for logs and cron mail: at most one every ten seconds."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._started = time.monotonic()
        self._last = 0.0

    def __call__(self, totals: RunTotals) -> None:
        now = time.monotonic()
        if now - self._last < 10:
            return
        self._last = now
        done = totals.sent + totals.failed + totals.retry
        rate = done / max(now - self._started, 1e-6)
        err.print(
            f"progress: {done}/{self._total} ({totals.sent} sent, {totals.failed} failed, "
            f"{totals.retry} to retry), {rate:.0f}/s",
            markup=False,
        )


def _run_with_progress(context: AppContext, number: int, total: int) -> SendSummary:
    from newsletter.delivery.send import send_edition

    settings, database, clock = context.settings, context.database, context.clock
    if not sys.stderr.isatty():
        return send_edition(
            settings, database, number, clock=clock, on_progress=_LogProgress(total)
        )
    columns = (
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("send", total=total, rate="0")
        started = time.monotonic()

        def update(totals: RunTotals) -> None:
            done = totals.sent + totals.failed + totals.retry
            rate = done / max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=done, rate=f"{rate:.0f}")

        return send_edition(settings, database, number, clock=clock, on_progress=update)


def send(
    ctx: typer.Context,
    number: EditionNumber,
    more_addresses: Annotated[
        list[str] | None, typer.Argument(help="More addresses for --test-to.", show_default=False)
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; for scripts.")] = False,
    test_to: Annotated[
        list[str] | None,
        typer.Option("--test-to", help="Send a marked test copy to these addresses only."),
    ] = None,
    dry_run_dir: Annotated[
        Path | None,
        typer.Option(
            "--dry-run", help="Write every message as .eml here; send nothing.", file_okay=False
        ),
    ] = None,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers",
            help="Queue the edition for 'newsletter worker' processes instead of sending "
            "from here.",
        ),
    ] = False,
) -> None:
    """Send edition N to every confirmed subscriber; rerun to resume after any stop."""
    from newsletter.delivery.send import recipient_count
    from newsletter.jobs.locking import job_lock

    context = app_context(ctx)
    if more_addresses and not test_to:
        raise NewsletterError(f"unexpected arguments: {' '.join(more_addresses)}")
    if workers and (test_to or dry_run_dir is not None):
        raise NewsletterError(
            "--workers sends for real: it goes with neither --test-to nor --dry-run"
        )
    if test_to:
        addresses = _checked_test_addresses([*test_to, *(more_addresses or [])])
        _send_test_copies(context, number, addresses)
        return
    if dry_run_dir is not None:
        _write_dry_run(context, number, dry_run_dir)
        return
    total = recipient_count(context.database, number)
    if not yes:
        _confirm(number, total)
    if workers:
        _queue_for_workers(context, number)
        return
    # The job lock: a scheduled run and a person never work on an edition at once.
    with job_lock(context.database, clock=context.clock):
        summary = _run_with_progress(context, number, total)
    _report(summary)


def _checked_test_addresses(raw: list[str]) -> list[str]:
    """The addresses normalized; a usage error (exit 2) naming the first that is none."""
    from subscribers.addresses import normalize_address

    checked = []
    for value in raw:
        try:
            checked.append(normalize_address(value).email)
        except InvalidInput:
            err.print(f"error: --test-to: {value!r} is not an e-mail address", markup=False)
            raise typer.Exit(2) from None
    return checked


def _send_test_copies(context: AppContext, number: int, addresses: list[str]) -> None:
    from newsletter.delivery.copies import send_test

    send_test(context.settings, context.database, number, addresses, clock=context.clock)
    out.print(f"test copy of edition {number} sent to {', '.join(addresses)}", markup=False)


def _write_dry_run(context: AppContext, number: int, out_dir: Path) -> None:
    from newsletter.delivery.copies import dry_run

    written = dry_run(context.settings, context.database, number, out_dir, clock=context.clock)
    out.print(f"wrote {dutch_number(written)} messages to {out_dir}", markup=False)


def _confirm(number: int, total: int) -> None:
    """Ask the person at the terminal; refuse when there is none to ask."""
    if not sys.stdin.isatty():
        raise NewsletterError("not on a terminal: pass --yes to send without asking")
    if not typer.confirm(f"send edition {number} to {dutch_number(total)} subscribers?"):
        out.print("nothing sent")
        raise typer.Exit(1)


def _report(summary: SendSummary) -> None:
    """The summary, the first failures, and an exit code for what did not go out."""
    from newsletter.delivery.send import describe_send

    out.print(describe_send(summary), markup=False)
    for failure in summary.run.failures[:20]:
        err.print(f"failed: {failure}", markup=False)
    if summary.counts.failed:
        raise typer.Exit(1)
    if not summary.finished:
        raise typer.Exit(EXIT_WAITING)


def _queue_for_workers(context: AppContext, number: int) -> None:
    """Snapshot the recipients and mark the edition sending; the workers do the rest."""
    from newsletter.delivery import status as delivery_status
    from newsletter.delivery.send import prepare_send
    from newsletter.jobs.locking import job_lock

    database, clock = context.database, context.clock
    # Under the job lock as a send from here: the scheduler is not drafting or sending.
    with job_lock(database, clock=clock):
        prepare_send(context.settings, database, number, now=clock())
        counts = delivery_status.edition_status(database, number).counts
    out.print(
        f"edition {number}: {dutch_number(counts.open)} queued for the workers "
        f"({dutch_number(counts.sent)} sent already, {dutch_number(counts.skipped)} skipped); "
        "run 'newsletter worker' (one or more, on any machine with these settings) "
        f"to send them, and 'newsletter edition status {number}' to follow",
        markup=False,
    )


def edition_status(
    ctx: typer.Context,
    number: EditionNumber,
    as_json: AsJson = False,
) -> None:
    """Counts per delivery state, and the failures with their last SMTP reply."""
    from newsletter.delivery import status as delivery_status

    context = app_context(ctx)
    status = delivery_status.edition_status(context.database, number)
    counts = {**asdict(status.counts), "total": status.counts.total}
    if as_json:
        print_json(
            {
                "number": status.number,
                "state": status.state,
                "sent_at": iso(status.sent_at),
                "counts": counts,
                "problems": [
                    {**asdict(problem), "next_attempt_at": iso(problem.next_attempt_at)}
                    for problem in status.problems
                ],
            }
        )
        return
    out.print(f"edition {number} is {status.state}", markup=False)
    for state, count in counts.items():
        out.print(f"  {state:<8} {dutch_number(count)}", markup=False)
    for problem in status.problems:
        when = f", next try {iso(problem.next_attempt_at)}" if problem.next_attempt_at else ""
        out.print(
            f"  {problem.state:<7} {problem.email or '(erased)'}: {problem.last_reply}{when}",
            markup=False,
        )
