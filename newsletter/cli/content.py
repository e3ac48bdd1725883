"""`newsletter fetch` and `newsletter articles`: the feeds, and the articles they brought."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from newsletter.cli.support import (
    AsJson,
    app_context,
    err,
    iso,
    listing_done,
    out,
    show_at_most,
)

if TYPE_CHECKING:  # the commands import the library when they run (see cli/app.py)
    from newsletter.content.articles import ArticleSummary
    from newsletter.content.ingest import FeedReport


def _report_line(report: FeedReport) -> str:
    if report.failed:
        return f"failed    {report.source}: {report.error}"
    if report.outcome == "unchanged":
        return f"unchanged {report.source}"
    return f"ok        {report.source}: {report.new} new, {report.updated} updated"


def fetch(ctx: typer.Context) -> None:
    """Fetch every configured feed and store new and edited articles."""
    from newsletter.content.ingest import fetch_all

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


def _article_json(article: ArticleSummary) -> dict[str, Any]:
    return {
        "id": article.id,
        "feed": article.feed,
        "guid": article.guid,
        "title": article.title,
        "link": article.link,
        "author": article.author,
        "categories": list(article.categories),
        "published_at": iso(article.published_at),
        "updated_at": iso(article.updated_at),
        "first_seen_at": iso(article.first_seen_at),
        "image_url": article.image_url,
    }


def articles(
    ctx: typer.Context,
    as_json: AsJson = False,
    limit: int = show_at_most(50),
) -> None:
    """List stored articles, newest first."""
    from newsletter.content.articles import list_articles

    with app_context(ctx).database.session() as session:
        found = list_articles(session, limit=limit)
    none_yet = "no articles yet; run 'newsletter fetch'"
    if listing_done(found, as_json=as_json, json_of=_article_json, none_yet=none_yet):
        return
    table = Table("id", "published", "title", "categories", box=None)
    for article in found:
        table.add_row(
            str(article.id),
            (iso(article.published_at) or "")[:10],
            article.title,
            ", ".join(article.categories),
        )
    out.print(table)
