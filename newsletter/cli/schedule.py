"""`newsletter run`, `newsletter runs` and `newsletter schedule`: the job, its record, its clock."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from newsletter.cli.support import AsJson, app_context, listing_done, out, show_at_most


def run(
    ctx: typer.Context,
    send: Annotated[
        bool | None,
        typer.Option(
            "--send/--no-send",
            help="Send a new draft at once, or only show it to staff "
            "(default: \\[schedule] auto_send).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the whole job once: retry, fetch, draft, send or show staff, purge."""
    from newsletter.jobs.job import run_job

    context = app_context(ctx)
    context.settings.require_secret_key()  # sending and purging need it: say so up front
    report = run_job(
        context.settings, context.database, clock=context.clock, trigger="cli", send=send
    )
    out.print(report.summary, markup=False)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def runs(
    ctx: typer.Context,
    as_json: AsJson = False,
    limit: int = show_at_most(20),
) -> None:
    """List the job's runs, newest first, with what each did."""
    from newsletter.jobs.report import describe_run
    from newsletter.jobs.runs import list_runs, run_json

    with app_context(ctx).database.session() as session:
        stored = list_runs(session, limit=limit)
    none_yet = "no runs yet; run 'newsletter run' or start the scheduler"
    if listing_done(stored, as_json=as_json, json_of=run_json, none_yet=none_yet):
        return
    # Plain lines, not a table: what happened stays on one line, for grep and logs.
    out.print(f"{'#':>4}  {'started (UTC)':<16}  {'trigger':<8}  {'outcome':<11}  what happened")
    for run in stored:
        started = run.started_at.isoformat()[:16].replace("T", " ")
        out.print(
            f"{run.id:>4}  {started:<16}  {run.trigger:<8}  {run.outcome:<11}  "
            + describe_run(run).partition(": ")[2],
            markup=False,
        )


def schedule(
    ctx: typer.Context,
    run_now: Annotated[
        bool, typer.Option("--run-now", help="Also run the job once right at start.")
    ] = False,
) -> None:
    """Run the job on \\[schedule] cron until stopped (SIGTERM or Ctrl-C)."""
    from newsletter.core.config import find_config_path
    from newsletter.jobs.scheduler import configure_logging, run_scheduler

    context = app_context(ctx)
    settings = context.settings
    configure_logging()
    config_path = find_config_path(context.config_path, os.environ)
    run_scheduler(settings, config_path=config_path, run_now=run_now)
