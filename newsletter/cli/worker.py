"""`newsletter worker`: a send worker (delivery/workers.py), one of any number at once."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.support import AppContext, app_context, err, out
from newsletter.delivery.outbox import DEFAULT_POLL_SECONDS

if TYPE_CHECKING:  # the command imports the library when it runs (see cli/app.py)
    from newsletter.delivery.workers import EditionHandled, WorkerReport


def _print_handled(result: EditionHandled) -> None:
    """One line per edition handled: the outbox, and what this worker did."""
    from newsletter.delivery.send import describe_send

    if result.summary is None:
        err.print(f"error: edition {result.number}: {result.error}", markup=False)
        return
    run = result.summary.run
    line = (
        f"{describe_send(result.summary)}; this worker: {run.sent} sent, {run.failed} failed, "
        f"{run.retry} to retry"
    )
    if result.summary.finished:
        line += "; the edition is sent"
    out.print(line, markup=False)
    for failure in run.failures[:20]:
        err.print(f"failed: {failure}", markup=False)


async def _work(context: AppContext, *, once: bool, poll_seconds: float) -> WorkerReport:
    from newsletter.core.signals import stop_on_signals
    from newsletter.delivery.workers import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopping(signum: signal.Signals) -> None:
        err.print(f"{signum.name}: stopping after the current batch", markup=False)
        stop.set()

    def on_signal(signum: signal.Signals) -> None:
        # A signal handler runs between two steps of the loop: it hands the work to it.
        loop.call_soon_threadsafe(stopping, signum)

    stop_on_signals(on_signal)
    return await run_worker(
        context.settings,
        context.database,
        clock=context.clock,
        stop=stop,
        once=once,
        poll_seconds=poll_seconds,
        on_edition=_print_handled,
    )


def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
    poll_seconds: Annotated[
        float,
        typer.Option(
            "--poll-seconds", min=0.1, help="How often to look for deliveries that are due."
        ),
    ] = DEFAULT_POLL_SECONDS,
) -> None:
    """Deliver editions being sent, alongside any other workers, until SIGTERM or Ctrl-C."""
    context = app_context(ctx)
    context.settings.require_secret_key()  # every message's links need it: say so up front
    database = context.database  # opened (and its schema checked) before the first pass
    if not once:
        from newsletter.jobs.scheduler import configure_logging

        configure_logging()
        err.print(
            f"worker started: looking for deliveries every {poll_seconds:g} s "
            f"({database.engine.dialect.name})",
            markup=False,
        )
    report = asyncio.run(_work(context, once=once, poll_seconds=poll_seconds))
    if not once:  # stopped as asked: a clean end, whatever the editions' state
        err.print("worker stopped", markup=False)
        return
    if not report.editions:
        out.print("nothing due")
    if report.exit_code:
        raise typer.Exit(report.exit_code)
