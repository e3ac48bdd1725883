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

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from newsletter.delivery.outbox import ALL_THEMES, OutboxRow
from newsletter.delivery.outbox_sql import NewRow, add_rows, driver_sql
from newsletter.editions.compose import ArticleView, select_articles
from subscribers.addresses import keyed_hash
from subscribers.models import Subscriber, Suppression

SNAPSHOT_BATCH = 2000


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


def _suppressed(session: Session, hashes: list[str]) -> set[str]:
    query = select(Suppression.address_hash).where(Suppression.address_hash.in_(hashes))
    return set(session.scalars(query))


def snapshot_recipients(
    session: Session,
    *,
    edition_id: int,
    articles: tuple[ArticleView, ...],
    settings: Settings,
    now: datetime,
    everyone: bool = False,
) -> int:
    """Add an outbox row for every confirmed, unsuppressed subscriber not in it yet.

    A subscriber whose themes no article is about is skipped, unless `everyone` (an
    announcement). Safe to run again (a resumed send): rows that exist are left as they are.
    Returns the number of rows added.
    """
    secret = settings.require_secret_key()
    existing = set(
        session.scalars(select(OutboxRow.subscriber_id).where(OutboxRow.edition_id == edition_id))
    )
    has_articles: dict[str, bool] = {}
    added = 0
    batch: list[Candidate] = []

    def flush() -> None:
        nonlocal added
        hashes = [keyed_hash(subscriber.email_key, secret) for subscriber in batch]
        suppressed = _suppressed(session, hashes)
        rows = []
        for subscriber, address_hash in zip(batch, hashes, strict=True):
            if subscriber.id in existing or address_hash in suppressed:
                continue
            variant = variant_of(subscriber.themes, settings)
            if variant not in has_articles:
                chosen = variant_themes(variant)
                has_articles[variant] = everyone or bool(
                    select_articles(articles, settings, themes=chosen)
                )
            if has_articles[variant]:
                rows.append(NewRow(subscriber.id, variant, "pending"))
            else:
                rows.append(NewRow(subscriber.id, variant, "skipped", "no article in their themes"))
        add_rows(session.connection(), edition_id, rows, now=now)
        added += len(rows)
        batch.clear()

    for subscriber in confirmed_subscribers(session):
        batch.append(subscriber)
        if len(batch) >= SNAPSHOT_BATCH:
            flush()
    flush()
    return added


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
