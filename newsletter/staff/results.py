"""What an edition achieved, for staff: counts per state, and every failure with its reply.

Counts come from the outbox (sent, failed, waiting, skipped). The problems are the
outbox rows that failed or wait for a retry, with the server's last reply, and the
bounces reported later by a delivery report (the consent log's `bounced` events that
name the edition). Staff pages may show the address; an erased person has none left,
and the list then says so. Nothing here is for the public pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.db import Database
from newsletter.delivery.outbox import OutboxRow, StateCounts, state_counts
from newsletter.editions.lifecycle import get_edition
from subscribers.models import ConsentEvent, Subscriber

# A page lists at most this many problems; the counts above it are always complete.
MAX_PROBLEMS = 500


@dataclass(frozen=True)
class DeliveryProblem:
    """One recipient the edition did not reach (yet), and what their server said."""

    address: str | None  # None once the person was erased
    kind: str  # "failed", "retry" (outbox state) or "bounced" (reported afterwards)
    reply: str
    at: datetime


@dataclass(frozen=True)
class EditionResults:
    number: int
    subject: str
    state: str
    counts: StateCounts
    problems: list[DeliveryProblem]
    more_problems: bool  # the list was cut at MAX_PROBLEMS

    @property
    def waiting(self) -> int:
        return self.counts.open


def _outbox_problems(session: Session, number: int) -> list[DeliveryProblem]:
    rows = session.execute(
        select(OutboxRow.state, OutboxRow.last_reply, OutboxRow.updated_at, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == OutboxRow.subscriber_id)
        .where(OutboxRow.edition_id == number, OutboxRow.state.in_(("failed", "retry")))
        .order_by(OutboxRow.updated_at, OutboxRow.id)
        .limit(MAX_PROBLEMS + 1)
    )
    return [DeliveryProblem(email, state, reply or "", at) for state, reply, at, email in rows]


def _reported_bounces(session: Session, number: int, since: datetime) -> list[DeliveryProblem]:
    """Bounces a delivery report brought in after the send (those refused while sending
    are failed outbox rows already)."""
    rows = session.execute(
        select(ConsentEvent.details, ConsentEvent.created_at, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
        .where(ConsentEvent.event == "bounced", ConsentEvent.created_at >= since)
        .order_by(ConsentEvent.created_at, ConsentEvent.id)
    )
    found = []
    for details, at, email in rows:
        facts = details or {}
        if facts.get("edition") == number and facts.get("via") != "smtp":
            found.append(DeliveryProblem(email, "bounced", str(facts.get("reply", "")), at))
    return found


def edition_results(session: Session, number: int) -> EditionResults:
    """Edition `number`'s results; EditionError when there is none."""
    edition = get_edition(session, number)
    problems = _outbox_problems(session, number)
    problems += _reported_bounces(session, number, edition.created_at)
    return EditionResults(
        number=edition.id,
        subject=edition.subject,
        state=edition.state,
        counts=state_counts(session, number),
        problems=problems[:MAX_PROBLEMS],
        more_problems=len(problems) > MAX_PROBLEMS,
    )


def load_results(database: Database, number: int) -> EditionResults:
    """`edition_results` in a transaction of its own."""
    with database.session() as session:
        return edition_results(session, number)
