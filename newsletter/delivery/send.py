"""Sending an edition: snapshot the recipients, compose per variant, run the engine.

`send_edition` may be run again at any moment, by anyone: it resumes where the outbox
stands, and two runs at once share the rows instead of both mailing anyone.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, EditionError
from newsletter.core.numbers import dutch_number
from newsletter.core.templating import template_environment
from newsletter.delivery.addressing import message_headers
from newsletter.delivery.engine import DeliveryEngine, RunTotals
from newsletter.delivery.outbox import (
    StateCounts,
    release_dead_claims,
    sent_times_since,
    state_counts,
)
from newsletter.delivery.pacing import Pacer
from newsletter.delivery.recipients import (
    snapshot_recipients,
    variant_themes,
    variants_in_outbox,
)
from newsletter.delivery.store import OutboxStore
from newsletter.editions.compose import EditionContent, compose_edition
from newsletter.editions.lifecycle import USED_STATES, get_edition, move_edition
from newsletter.editions.models import Edition, EditionArticle
from newsletter.editions.personalized import ComposedMail
from newsletter.editions.preview import edition_content
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.mailer import smtp_options
from newsletter.mail.messages import MessageTemplate
from subscribers.models import Subscriber

SENDABLE_STATES = ("draft", "approved", "sending")


def _check_articles_unused(session: Session, edition: Edition) -> None:
    """An article is never in two sent digests (an announcement may quote one)."""
    ids = [entry.article_id for entry in edition.entries]
    if not ids:
        return
    clash = session.scalar(
        select(EditionArticle.edition_id)
        .join(Edition, Edition.id == EditionArticle.edition_id)
        .where(
            EditionArticle.article_id.in_(ids),
            Edition.id != edition.id,
            Edition.state.in_(USED_STATES),
            Edition.kind == "digest",
        )
        .limit(1)
    )
    if clash is not None:
        raise EditionError(
            f"edition {edition.id} shares articles with edition {clash}, which was sent; "
            "draft a new edition"
        )


def recipient_count(database: Database, number: int) -> int:
    """How many would get edition N now: open outbox rows, or confirmed subscribers."""
    with database.session() as session:
        edition = get_edition(session, number)
        if edition.state == "sending":
            return state_counts(session, number).open
        if edition.state not in SENDABLE_STATES:
            return 0
        query = select(func.count()).select_from(Subscriber).where(Subscriber.status == "confirmed")
        return int(session.scalar(query) or 0)


def prepare_send(
    settings: Settings, database: Database, number: int, *, now: datetime
) -> EditionContent:
    """Check the edition can go, snapshot its recipients, and mark it sending."""
    with database.session() as session:
        # Locked: a sender finishing the edition meanwhile (delivery/workers.py) either
        # sees the rows added here, or this sees the edition sent.
        edition = get_edition(session, number, lock=True)
        if edition.state == "sent":
            raise EditionError(f"edition {number} was sent already")
        if edition.state not in SENDABLE_STATES:
            raise EditionError(f"edition {number} is {edition.state}; it cannot be sent")
        content = edition_content(edition)
        if edition.state != "sending" and not content.for_everyone:
            # An announcement may quote articles a digest sent before.
            _check_articles_unused(session, edition)
        snapshot_recipients(
            session,
            edition_id=edition.id,
            articles=content.articles,
            settings=settings,
            now=now,
            everyone=content.for_everyone,
        )
        if edition.state != "sending":
            move_edition(edition, "sending", now=now)
        release_dead_claims(session, edition.id, now=now)
    return content


def compose_variants(
    content: EditionContent, settings: Settings, variants: Sequence[str]
) -> dict[str, ComposedMail | None]:
    """One composition per theme variant: never per recipient."""
    environment = template_environment(settings)
    return {
        variant: compose_edition(
            content, settings, environment=environment, themes=variant_themes(variant)
        )
        for variant in variants
    }


def message_templates(
    content: EditionContent, settings: Settings, variants: Sequence[str], *, now: datetime
) -> dict[str, MessageTemplate]:
    """The message of each variant that gets one, built once for all its recipients."""
    composed = compose_variants(content, settings, variants)
    headers = message_headers(settings, content, now=now)
    return {
        variant: MessageTemplate.build(mail, headers)
        for variant, mail in composed.items()
        if mail is not None
    }


@dataclass(frozen=True)
class SendSummary:
    """How an edition stands after a run: the outbox counts and what this run did."""

    number: int
    counts: StateCounts
    run: RunTotals
    finished: bool  # every row is sent, failed or skipped; the edition is `sent`


def describe_send(summary: SendSummary) -> str:
    """The outbox of one edition in a line, e.g. "edition 4: 1.234 sent, 0 failed ..."."""
    counts = summary.counts
    line = (
        f"edition {summary.number}: {dutch_number(counts.sent)} sent, "
        f"{dutch_number(counts.failed)} failed permanently, "
        f"{dutch_number(counts.retry + counts.pending)} waiting for retry, "
        f"{dutch_number(counts.skipped)} skipped"
    )
    if counts.sending:
        # Rows another run (a second terminal, a worker) holds right now.
        line += f", {dutch_number(counts.sending)} being sent by another run"
    return line


def finish_if_done(database: Database, number: int, *, now: datetime) -> tuple[StateCounts, bool]:
    """Mark edition N sent when no row of it is open; its counts, and whether it is sent."""
    with database.session() as session:
        edition = get_edition(session, number, lock=True)  # see prepare_send
        counts = state_counts(session, number)
        if counts.open == 0 and edition.state == "sending":
            move_edition(edition, "sent", now=now)
        return counts, edition.state == "sent"


async def deliver_prepared(
    settings: Settings,
    database: Database,
    content: EditionContent,
    *,
    clock: Clock,
    on_progress: Callable[[RunTotals], None] | None = None,
    stop: asyncio.Event | None = None,
    resume_hint: str = "",
) -> SendSummary:
    """Deliver the due rows of an edition `prepare_send` made ready, until none is left
    or `stop` is set (then after the current batch); mark it sent when nothing is open.

    Safe beside other processes doing the same (delivery/workers.py): rows are claimed,
    never shared. DeliveryError when the server could not be reached and mail still waits.
    """
    number = content.number
    with database.session() as session:
        variants = variants_in_outbox(session, number)
        sent_times = []
        if settings.delivery.max_per_hour:  # only the hourly cap needs the last hour
            sent_times = list(sent_times_since(session, clock() - timedelta(hours=1)))
    templates = message_templates(content, settings, variants, now=clock())
    store = OutboxStore(
        settings, database, edition_id=number, templates=templates, clock=clock, stop=stop
    )
    loop = asyncio.get_running_loop()
    now_monotonic, now_wall = loop.time(), clock()
    pacer = Pacer(
        per_second=settings.smtp.rate_per_second,
        per_hour=settings.delivery.max_per_hour,
        sent_in_last_hour=[now_monotonic - (now_wall - t).total_seconds() for t in sent_times],
        monotonic=loop.time,
    )
    engine = DeliveryEngine(
        store,
        options=smtp_options(settings),
        connections=settings.smtp.max_connections,
        pacer=pacer,
        signer=DkimSigner.from_settings(settings),
        on_progress=on_progress,
    )
    # What exists before the send (modules, settings, templates) does not become garbage
    # during it: frozen, it is not walked again by each full collection the send causes.
    gc.freeze()
    try:
        totals = await engine.run()
    finally:
        gc.unfreeze()
        store.close()
    counts, finished = finish_if_done(database, number, now=clock())
    if totals.unreachable and not finished:
        raise DeliveryError(f"{totals.unreachable}; {counts.open} message(s) wait{resume_hint}")
    return SendSummary(number=number, counts=counts, run=totals, finished=finished)


def send_edition(
    settings: Settings,
    database: Database,
    number: int,
    *,
    clock: Clock,
    on_progress: Callable[[RunTotals], None] | None = None,
) -> SendSummary:
    """Send edition N to everyone in its outbox who is due; resume whatever stands."""
    with database.session() as session:
        if get_edition(session, number).state == "sent":
            # A rerun after the end (or after a crash right at it): nothing to do.
            return SendSummary(
                number=number, counts=state_counts(session, number), run=RunTotals(), finished=True
            )
    content = prepare_send(settings, database, number, now=clock())
    return asyncio.run(
        deliver_prepared(
            settings,
            database,
            content,
            clock=clock,
            on_progress=on_progress,
            resume_hint=f", run 'newsletter send {number}' again to resume",
        )
    )
