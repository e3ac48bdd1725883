"""The `newsletter` command: parses arguments, calls the library, turns errors into exit codes."""

from __future__ import annotations

import sys
import webbrowser
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from newsletter import __version__
from newsletter.cli import bounces as cli_bounces
from newsletter.cli import schedule as cli_schedule
from newsletter.cli import send as cli_send
from newsletter.cli import worker as cli_worker
from newsletter.cli.staff import staff_app
from newsletter.cli.subscribers import subscribers_app
from newsletter.cli.support import (
    AppContext,
    ReportingGroup,
    app_context,
    err,
    iso,
    out,
    print_json,
)
from newsletter.content.ingest import FeedReport, fetch_all
from newsletter.content.models import Article
from newsletter.core.db import upgrade_schema
from newsletter.core.errors import NewsletterError
from newsletter.editions.drafting import draft_edition
from newsletter.editions.lifecycle import get_edition, list_editions
from newsletter.editions.models import Edition
from newsletter.editions.preview import preview_edition

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


def _report_line(report: FeedReport) -> str:
    if report.failed:
        return f"failed    {report.source}: {report.error}"
    if report.outcome == "unchanged":
        return f"unchanged {report.source}"
    return f"ok        {report.source}: {report.new} new, {report.updated} updated"


# -- feeds and articles -------------------------------------------------------------


@app.command()
def fetch(ctx: typer.Context) -> None:
    """Fetch every configured feed and store new and edited articles."""
    context = app_context(ctx)
    reports = fetch_all(context.settings, context.database, clock=context.clock)
    for report in reports:
        for warning in report.warnings:
            err.print(f"warning: {report.source}: {warning}", markup=False)
        (err if report.failed else out).print(_report_line(report), markup=False)
    failed = sum(report.failed for report in reports)
    if failed:
        err.print(f"{failed} of {len(reports)} feeds failed", markup=False)
        raise typer.Exit(1)


def _article_json(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "feed": article.feed.url,
        "guid": article.guid,
        "title": article.title,
        "link": article.link,
        "author": article.author,
        "categories": article.categories,
        "published_at": iso(article.published_at),
        "updated_at": iso(article.updated_at),
        "first_seen_at": iso(article.first_seen_at),
        "image_url": article.image_url,
    }


@app.command()
def articles(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
) -> None:
    """List stored articles, newest first."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    context = app_context(ctx)
    with context.database.session() as session:
        rows = session.scalars(
            select(Article)
            .options(selectinload(Article.feed))
            .order_by(Article.published_at.desc(), Article.first_seen_at.desc())
            .limit(limit)
        ).all()
        data = [_article_json(article) for article in rows]
    if as_json:
        print_json(data)
        return
    if not data:
        out.print("no articles yet; run 'newsletter fetch'")
        return
    table = Table("id", "published", "title", "categories", box=None)
    for item in data:
        table.add_row(
            str(item["id"]),
            (item["published_at"] or "")[:10],
            item["title"],
            ", ".join(item["categories"]),
        )
    out.print(table)


# -- editions -----------------------------------------------------------------------


def _edition_json(edition: Edition, article_count: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": edition.id,
        "state": edition.state,
        "subject": edition.subject,
        "created_at": iso(edition.created_at),
        "approved_at": iso(edition.approved_at),
        "sent_at": iso(edition.sent_at),
        "superseded_by": edition.superseded_by,
    }
    if article_count is not None:
        data["articles"] = article_count
    return data


def _read_intro(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NewsletterError(f"intro file not found: {path}") from None
    except UnicodeDecodeError:
        raise NewsletterError(f"intro file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise NewsletterError(f"cannot read intro file {path}: {exc.strerror}") from exc


@app.command()
def draft(
    ctx: typer.Context,
    intro: Annotated[
        Path | None, typer.Option(help="Markdown file with the edition's introduction.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Draft even when fewer than min_new_articles are new.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a draft edition from the articles that are new since the last sent one."""
    context = app_context(ctx)
    result = draft_edition(
        context.settings,
        context.database,
        clock=context.clock,
        intro_markdown=_read_intro(intro),
        force=force,
    )
    if as_json:
        print_json({"created": result.number is not None, **asdict(result)})
        return
    if result.number is None:
        out.print(
            f"nothing new: {result.new_articles} new article(s), "
            f"at least {result.min_new_articles} needed (use --force to draft anyway)"
        )
        return
    out.print(f"created draft edition {result.number} with {result.new_articles} articles")
    if result.left_out:
        out.print(f"{result.left_out} older new article(s) left out (see feed.max_articles)")
    for number in result.superseded:
        out.print(f"edition {number} is superseded by this draft")


@app.command()
def editions(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List editions, newest first."""
    with app_context(ctx).database.session() as session:
        data = [_edition_json(edition, count) for edition, count in list_editions(session)]
    if as_json:
        print_json(data)
        return
    if not data:
        out.print("no editions yet; run 'newsletter draft'")
        return
    table = Table("#", "state", "created", "articles", "subject", box=None)
    for item in data:
        table.add_row(
            str(item["number"]),
            item["state"],
            item["created_at"][:16].replace("T", " "),
            str(item["articles"]),
            item["subject"],
        )
    out.print(table)


@edition_app.command("show")
def edition_show(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="Edition number.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one edition and its articles."""
    with app_context(ctx).database.session() as session:
        edition = get_edition(session, number)
        data = _edition_json(edition, len(edition.entries))
        data["intro_markdown"] = edition.intro_markdown
        data["articles"] = [
            {
                "position": entry.position,
                "id": entry.article.id,
                "title": entry.article.title,
                "link": entry.article.link,
                "published_at": iso(entry.article.published_at),
                "categories": entry.article.categories,
            }
            for entry in edition.entries
        ]
    if as_json:
        print_json(data)
        return
    out.print(f"edition {data['number']} ({data['state']}): {data['subject']}", markup=False)
    out.print(f"created {data['created_at']}", markup=False)
    if data["intro_markdown"]:
        out.print(f"intro: {data['intro_markdown'].strip().splitlines()[0]}…", markup=False)
    for item in data["articles"]:
        date = (item["published_at"] or "")[:10]
        out.print(f"  {item['position'] + 1}. {date}  {item['title']}", markup=False)


@app.command()
def preview(
    ctx: typer.Context,
    number: Annotated[
        int | None, typer.Argument(help="Edition number (default: the newest).")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write the files to.", file_okay=False)
    ] = Path("preview"),
    open_browser: Annotated[bool, typer.Option("--open", help="Open the HTML.")] = False,
) -> None:
    """Write edition-N.html and edition-N.txt with sample recipient values."""
    context = app_context(ctx)
    files = preview_edition(context.settings, context.database, number, out_dir)
    out.print(f"HTML: {files.html}", markup=False)
    out.print(f"text: {files.text}", markup=False)
    if open_browser:
        webbrowser.open(files.html.resolve().as_uri())


# -- maintenance and demo -----------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the database schema to the newest version."""
    from newsletter.core.db import create_db_engine

    engine = create_db_engine(app_context(ctx).settings.database_url)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
    out.print("database is up to date")


@app.command()
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


@app.command()
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


# Delivery lives in its own module; registered here so `--help` lists it after preview.
app.command("send")(cli_send.send)
edition_app.command("status")(cli_send.edition_status)
# The job, its record and the scheduler (cli_schedule.py).
app.command("run")(cli_schedule.run)
app.command("runs")(cli_schedule.runs)
app.command("schedule")(cli_schedule.schedule)
app.command("bounces")(cli_bounces.bounces)  # the return mailbox (cli_bounces.py)
app.command("worker")(cli_worker.worker)  # send workers, several at once (cli_worker.py)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app(standalone_mode=True))
