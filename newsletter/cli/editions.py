"""`newsletter draft`, `editions`, `edition show` and `preview`: making and reading editions."""

from __future__ import annotations

import webbrowser
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from newsletter.cli.support import (
    AsJson,
    EditionNumber,
    app_context,
    iso,
    listing_done,
    out,
    print_json,
)
from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:  # the commands import the library when they run (see cli/app.py)
    from newsletter.editions.lifecycle import EditionDescription, EditionSummary


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


def draft(
    ctx: typer.Context,
    intro: Annotated[
        Path | None, typer.Option(help="Markdown file with the edition's introduction.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Draft even when fewer than min_new_articles are new.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Create a draft edition from the articles that are new since the last sent one."""
    from newsletter.editions.drafting import draft_edition

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


def _edition_json(edition: EditionSummary) -> dict[str, Any]:
    return {
        "number": edition.number,
        "state": edition.state,
        "subject": edition.subject,
        "created_at": iso(edition.created_at),
        "approved_at": iso(edition.approved_at),
        "sent_at": iso(edition.sent_at),
        "superseded_by": edition.superseded_by,
        "articles": edition.articles,
    }


def editions(
    ctx: typer.Context,
    as_json: AsJson = False,
) -> None:
    """List editions, newest first."""
    from newsletter.editions.lifecycle import list_editions

    with app_context(ctx).database.session() as session:
        found = list_editions(session)
    none_yet = "no editions yet; run 'newsletter draft'"
    if listing_done(found, as_json=as_json, json_of=_edition_json, none_yet=none_yet):
        return
    table = Table("#", "state", "created", "articles", "subject", box=None)
    for edition in found:
        table.add_row(
            str(edition.number),
            edition.state,
            edition.created_at.isoformat()[:16].replace("T", " "),
            str(edition.articles),
            edition.subject,
        )
    out.print(table)


def _description_json(description: EditionDescription) -> dict[str, Any]:
    # The summary's article count gives way to the articles themselves, in its place.
    return {
        **_edition_json(description.summary),
        "articles": [
            {
                "position": entry.position,
                "id": entry.article_id,
                "title": entry.title,
                "link": entry.link,
                "published_at": iso(entry.published_at),
                "categories": list(entry.categories),
            }
            for entry in description.entries
        ],
        "intro_markdown": description.intro_markdown,
    }


def edition_show(
    ctx: typer.Context,
    number: EditionNumber,
    as_json: AsJson = False,
) -> None:
    """Show one edition and its articles."""
    from newsletter.editions.lifecycle import describe_edition

    with app_context(ctx).database.session() as session:
        description = describe_edition(session, number)
    if as_json:
        print_json(_description_json(description))
        return
    edition = description.summary
    out.print(f"edition {edition.number} ({edition.state}): {edition.subject}", markup=False)
    out.print(f"created {iso(edition.created_at)}", markup=False)
    if description.intro_markdown:
        first_line = description.intro_markdown.strip().splitlines()[0]
        out.print(f"intro: {first_line}…", markup=False)
    for entry in description.entries:
        date = (iso(entry.published_at) or "")[:10]
        out.print(f"  {entry.position + 1}. {date}  {entry.title}", markup=False)


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
    from newsletter.editions.preview import preview_edition

    context = app_context(ctx)
    files = preview_edition(context.settings, context.database, number, out_dir)
    out.print(f"HTML: {files.html}", markup=False)
    out.print(f"text: {files.text}", markup=False)
    if open_browser:
        webbrowser.open(files.html.resolve().as_uri())
