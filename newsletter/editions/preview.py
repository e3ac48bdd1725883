"""Previews: an edition composed with sample recipient values, written as HTML and text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import CompositionError, NewsletterError
from newsletter.core.templating import template_environment
from newsletter.editions.compose import (
    ArticleView,
    EditionContent,
    ItemView,
    compose_edition,
    sample_recipient,
)
from newsletter.editions.lifecycle import get_edition, latest_edition
from newsletter.editions.models import Edition


def edition_content(edition: Edition) -> EditionContent:
    """The composable view of a stored edition (its articles must be loaded)."""
    return EditionContent(
        number=edition.id,
        subject=edition.subject,
        intro_markdown=edition.intro_markdown,
        created_at=edition.created_at,
        articles=tuple(
            ArticleView(
                title=entry.article.title,
                link=entry.article.link,
                published_at=entry.article.published_at,
                categories=tuple(entry.article.categories),
                summary_html=entry.article.summary_html,
                content_html=entry.article.content_html,
                image_url=entry.article.image_url,
                image_alt=entry.article.image_alt,
            )
            for entry in edition.entries
        ),
        items=tuple(ItemView(item.title, item.link, item.text) for item in edition.items),
        kind=edition.kind,
    )


@dataclass(frozen=True)
class PreviewFiles:
    html: Path
    text: Path


def write_preview(
    content: EditionContent,
    settings: Settings,
    *,
    environment: jinja2.Environment,
    out_dir: Path,
) -> PreviewFiles:
    """Compose `content` for a sample recipient and write edition-N.html and edition-N.txt."""
    html_document, text_document = render_preview(content, settings, environment=environment)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = PreviewFiles(
        html=out_dir / f"edition-{content.number}.html",
        text=out_dir / f"edition-{content.number}.txt",
    )
    files.html.write_text(html_document, encoding="utf-8")
    files.text.write_text(text_document, encoding="utf-8")
    return files


def render_preview(
    content: EditionContent, settings: Settings, *, environment: jinja2.Environment
) -> tuple[str, str]:
    """The HTML and text a reader of every theme gets, with sample recipient values."""
    mail = compose_edition(content, settings, environment=environment)
    if mail is None:  # pragma: no cover - only a theme filter can empty an edition
        raise CompositionError(f"edition {content.number} has nothing to show")
    recipient = sample_recipient(settings)
    return mail.html_for(recipient), mail.text_for(recipient)


def preview_edition(
    settings: Settings, database: Database, number: int | None, out_dir: Path
) -> PreviewFiles:
    """Write edition N (default: the newest) as HTML and text with sample recipient values."""
    with database.session() as session:
        edition = latest_edition(session) if number is None else get_edition(session, number)
        content = edition_content(edition)
    try:
        return write_preview(
            content, settings, environment=template_environment(settings), out_dir=out_dir
        )
    except OSError as exc:
        raise NewsletterError(f"cannot write the preview to {out_dir}: {exc.strerror}") from exc
