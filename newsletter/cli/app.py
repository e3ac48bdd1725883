"""The `newsletter` command: parses arguments, calls the library, turns errors into exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from newsletter import __version__
from newsletter.cli import bounces as cli_bounces
from newsletter.cli import content as cli_content
from newsletter.cli import editions as cli_editions
from newsletter.cli import schedule as cli_schedule
from newsletter.cli import send as cli_send
from newsletter.cli import worker as cli_worker
from newsletter.cli.staff import staff_app
from newsletter.cli.subscribers import subscribers_app
from newsletter.cli.support import AppContext, ReportingGroup, app_context, out
from newsletter.core.db import create_db_engine, upgrade_schema

app = typer.Typer(
    cls=ReportingGroup,
    help="The newsletter of Radicale vernieuwing jeugdzorg: fetch, draft, preview, send.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
edition_app = typer.Typer(cls=ReportingGroup, help="Look at one edition.", no_args_is_help=True)
db_app = typer.Typer(cls=ReportingGroup, help="Database maintenance.", no_args_is_help=True)
app.add_typer(edition_app, name="edition")
app.add_typer(db_app, name="db")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(staff_app, name="staff")


def _version(value: bool) -> None:
    if value:
        out.print(f"newsletter {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Settings file (default: $NEWSLETTER_CONFIG, else ./newsletter.toml).",
            dir_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    if not isinstance(ctx.obj, AppContext):
        ctx.obj = AppContext(config_path=config)
    else:
        ctx.obj.config_path = config or ctx.obj.config_path
    ctx.call_on_close(ctx.obj.close)


# -- maintenance, the web app and the demo ------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the database schema to the newest version."""
    engine = create_db_engine(app_context(ctx).settings.database_url)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
    out.print("database is up to date")


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: web.host in the settings).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: web.port in the settings).")
    ] = None,
) -> None:
    """Serve the sign-up, confirmation, unsubscribe and preference pages and the JSON API."""
    from newsletter.web.server import serve as serve_web

    context = app_context(ctx)
    serve_web(context.settings, context.database, host=host, port=port, clock=context.clock)


def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Work here instead of a new temporary folder.", file_okay=False),
    ] = None,
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule",
            help="Let the real scheduler run the job (fetch, draft, send) once, "
            "a few seconds after it started, instead of drafting and sending directly.",
        ),
    ] = False,
) -> None:
    """Run the whole job on built-in defaults: sample feed, SQLite, a local SMTP server."""
    from newsletter.cli.demo import run_demo

    run_demo(directory, out=out, schedule=schedule)


# Each command group's module holds its commands; they are registered here, in the
# order `newsletter --help` lists them.
for name, command in (
    ("fetch", cli_content.fetch),
    ("articles", cli_content.articles),
    ("draft", cli_editions.draft),
    ("editions", cli_editions.editions),
    ("preview", cli_editions.preview),
    ("serve", serve),
    ("demo", demo),
    ("send", cli_send.send),
    ("run", cli_schedule.run),
    ("runs", cli_schedule.runs),
    ("schedule", cli_schedule.schedule),
    ("bounces", cli_bounces.bounces),
    ("worker", cli_worker.worker),
):
    app.command(name)(command)
edition_app.command("show")(cli_editions.edition_show)
edition_app.command("status")(cli_send.edition_status)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app(standalone_mode=True))
