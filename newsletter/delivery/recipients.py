"""Who gets an edition: the snapshot of recipients into the outbox, per theme variant.

A subscriber's variant is the set of themes they chose ("*" for none: every article).
The mail is composed once per variant; a variant with no article in this edition gets
no mail, and its rows are skipped at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, case, cast, literal, null, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from newsletter.delivery.outbox import ALL_THEMES, OutboxRow
from newsletter.delivery.outbox_sql import driver_sql
from newsletter.editions.compose import ArticleView, select_articles
from subscribers.models import Subscriber

SNAPSHOT_BATCH = 2000
NO_ARTICLE = "no article in their themes"


def variant_of(themes: Iterable[str], settings: Settings) -> str:
    """A subscriber's variant key: chosen, still-configured themes in settings order."""
    if not themes:  # most people: every theme
        return ALL_THEMES
    chosen = set(themes)
    known = [slug for slug in settings.themes if slug in chosen]
    return ",".join(known) if known else ALL_THEMES


def variant_themes(variant: str) -> frozenset[str] | None:
    """The theme filter composition takes for a variant (None: every article)."""
    return None if variant == ALL_THEMES else frozenset(variant.split(","))


@dataclass(frozen=True)
class Candidate:
    """What the snapshot needs of a confirmed subscriber."""

    id: int
    email_key: str
    themes: tuple[str, ...]


# Read on the driver: a snapshot reads every confirmed subscriber, and SQLAlchemy's
# result processing cost more than the query.
_CANDIDATES_SQL = (
    "SELECT id, email_key, themes FROM subscribers WHERE status = 'confirmed' "
    "AND id > {after} ORDER BY id LIMIT {limit}"
)


def _themes(value: object) -> tuple[str, ...]:
    """The themes column as the driver returns it: JSON text (SQLite) or a list."""
    if isinstance(value, str):
        value = json.loads(value) if value != "[]" else []
    if not isinstance(value, list):
        return ()
    return tuple(str(theme) for theme in value)


def confirmed_subscribers(session: Session) -> Iterator[Candidate]:
    """Every confirmed subscriber, streamed in id order as plain rows (memory stays flat)."""
    connection = session.connection()
    sql = driver_sql(_CANDIDATES_SQL, connection.dialect.name)
    last_id = 0
    while True:
        batch = connection.exec_driver_sql(
            sql, {"after": last_id, "limit": SNAPSHOT_BATCH}
        ).fetchall()
        if not batch:
            return
        for row_id, email_key, themes in batch:
            yield Candidate(row_id, email_key, _themes(themes))
        last_id = batch[-1][0]


def theme_sets(session: Session) -> list[str]:
    """The distinct themes columns of confirmed subscribers, as the database's text."""
    themes_text = cast(Subscriber.themes, Text)
    query = select(themes_text).where(Subscriber.status == "confirmed").distinct()
    return [text for text in session.scalars(query) if text is not None]


def snapshot_recipients(
    session: Session,
    *,
    edition_id: int,
    articles: tuple[ArticleView, ...],
    settings: Settings,
    now: datetime,
    everyone: bool = False,
) -> int:
    """Add an outbox row for every confirmed subscriber not in it yet, in one statement.

    A subscriber whose themes no article is about gets a skipped row, unless `everyone`
    (an announcement). Safe to run again (a resumed send): rows that exist are left as
    they are. Suppressed addresses are left out when their rows are claimed (their hash
    needs the secret key, so it is not a column SQL could join on). Returns the number
    of rows added.

    Set-based: a few theme sets (their variants and whether they get a mail are worked
    out here, once each) become a CASE over the themes column, and the database copies
    the subscribers into the outbox itself, so the snapshot costs no Python per row.
    """
    texts = theme_sets(session)
    if not texts:
        return 0
    variants = {text: variant_of(_themes(text), settings) for text in texts}
    gets_mail = {
        variant: everyone
        or bool(select_articles(articles, settings, themes=variant_themes(variant)))
        for variant in set(variants.values())
    }
    themes_text = cast(Subscriber.themes, Text)

    def by_theme_set(values: dict[str, str | None]) -> ColumnElement[Any]:
        return case(values, value=themes_text, else_=null())

    stamp = literal(now, OutboxRow.created_at.type)
    rows = select(
        literal(edition_id),
        Subscriber.id,
        by_theme_set(variants),  # type: ignore[arg-type]
        by_theme_set(
            {text: "pending" if gets_mail[v] else "skipped" for text, v in variants.items()}
        ),
        by_theme_set({text: None if gets_mail[v] else NO_ARTICLE for text, v in variants.items()}),
        literal(0),
        stamp,
        stamp,
    ).where(
        Subscriber.status == "confirmed",
        # A theme set that appeared since theme_sets() read them waits for the next
        # snapshot, as someone who confirmed a moment later would.
        themes_text.in_(texts),
    )
    columns = ["edition_id", "subscriber_id", "variant", "state", "last_reply", "attempts"]
    # Who has a row already keeps it, by the unique index. (NOT EXISTS over the outbox
    # made PostgreSQL scan the rows this very statement inserted, for each subscriber.)
    dialect_insert = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    statement = (
        dialect_insert(OutboxRow)
        .from_select([*columns, "created_at", "updated_at"], rows)
        .on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    )
    result = session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def variants_in_outbox(session: Session, edition_id: int) -> list[str]:
    return list(
        session.scalars(
            select(OutboxRow.variant)
            .where(OutboxRow.edition_id == edition_id, OutboxRow.state != "skipped")
            .distinct()
        )
    )


def subscribers_by_id(session: Session, ids: Iterable[int]) -> Mapping[int, Subscriber]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Subscriber).where(Subscriber.id.in_(wanted)))
    return {subscriber.id: subscriber for subscriber in rows}
