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
from email.utils import parseaddr
from functools import partial
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, EditionError
from newsletter.core.processes import process_token
from newsletter.core.templating import template_environment
from newsletter.delivery.engine import Delivery, DeliveryEngine, RunTotals
from newsletter.delivery.groupcommit import GroupCommit, Ticket
from newsletter.delivery.outbox import (
    Outcome,
    StateCounts,
    claim_rows,
    give_back_row,
    record_outcomes,
    release_claim,
    release_dead_claims,
    renew_lease,
    sent_times_since,
    skip_rows,
    state_counts,
)
from newsletter.delivery.pacing import Pacer, next_attempt_at
from newsletter.delivery.recipients import (
    confirmed_subscribers,
    snapshot_recipients,
    subscribers_by_id,
    variant_of,
    variant_themes,
    variants_in_outbox,
)
from newsletter.editions.compose import EditionContent, compose_edition
from newsletter.editions.lifecycle import USED_STATES, get_edition, move_edition
from newsletter.editions.models import Edition, EditionArticle
from newsletter.editions.personalized import ComposedMail
from newsletter.editions.preview import edition_content
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.identities import message_id, verp_address
from newsletter.mail.mailer import sender_address, smtp_options
from newsletter.mail.messages import MessageHeaders, MessageRecipient, MessageTemplate
from newsletter.mail.smtp import SmtpConnection
from subscribers.bounces import record_hard_bounce
from subscribers.models import Subscriber
from subscribers.tokens import link_token

SENDABLE_STATES = ("draft", "approved", "sending")

T = TypeVar("T")


@dataclass(frozen=True)
class Addressing:
    """The sender-side addresses of every message of a send."""

    from_: str
    return_path: str
    domain: str
    list_id: str
    verp: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Addressing:
        sender = sender_address(settings)
        domain = sender.rpartition("@")[2]
        return_path = settings.delivery.return_path or sender
        list_id = settings.delivery.list_id or f"nieuwsbrief.{domain}"
        return cls(
            from_=settings.sender.from_,
            return_path=parseaddr(return_path)[1],
            domain=domain,
            list_id=f"{settings.site.name} <{list_id}>",
            verp=settings.delivery.verp,
        )


def _check_articles_unused(session: Session, edition: Edition) -> None:
    """An article is never in two sent editions."""
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
        # Locked: a sender finishing the edition meanwhile (workers.py) either sees the
        # rows added here, or this sees the edition sent.
        edition = get_edition(session, number, lock=True)
        if edition.state == "sent":
            raise EditionError(f"edition {number} was sent already")
        if edition.state not in SENDABLE_STATES:
            raise EditionError(f"edition {number} is {edition.state}; it cannot be sent")
        if edition.state != "sending":
            _check_articles_unused(session, edition)
        content = edition_content(edition)
        snapshot_recipients(
            session, edition_id=edition.id, articles=content.articles, settings=settings, now=now
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


def _anonymous(reply: str, delivery: Delivery) -> str:
    """A server reply without the recipient's address (replies often quote it): the
    outbox keeps why a message failed, not who it was for; the row says that already."""
    return reply.replace(delivery.recipient.email, "(address)")


class OutcomeWriter:
    """The send's one driver connection: claims, and outcomes committed in groups.

    Outcomes go through a GroupCommit (groupcommit.py): a worker waits for its outcome
    only where the crash bound needs it, before the final dot of its next message, so
    the outcomes of several connections share one commit. Commits run on the loop:
    handing them to a thread measured slower (its wake-ups and the GIL cost more than
    the loop time saved).

    On SQLite this connection commits with `synchronous=FULL`, so an outcome is on disk
    before the message after it can be accepted: a power cut, not only a crash, repeats
    at most the messages in flight. (The other connections keep NORMAL; PostgreSQL's
    commits are durable as they are.)
    """

    def __init__(self, database: Database, *, holder: str, clock: Clock) -> None:
        self._database = database
        self._holder = holder
        self._clock = clock
        self.dialect = database.engine.dialect.name
        self._group: GroupCommit[Outcome] = GroupCommit(self._write)
        # One driver connection for the whole send: checking one out of the pool per
        # commit costs more than the commit itself, and claims share it.
        self._connection: PoolProxiedConnection | None = None

    def record(self, outcome: Outcome) -> Ticket:
        """Write `outcome` with others; its ticket opens once it is committed."""
        return self._group.record(outcome)

    def flush(self) -> None:
        """Commit what was recorded now, whether or not anyone waits for it."""
        self._group.flush()

    def _write(self, outcomes: list[Outcome]) -> None:
        self.transaction(
            lambda connection: record_outcomes(
                connection,
                outcomes,
                dialect=self.dialect,
                holder=self._holder,
                now=self._clock(),
            )
        )

    def transaction(self, work: Callable[[PoolProxiedConnection], T]) -> T:
        """`work` on the send's driver connection, committed (claims use it too)."""
        if self._connection is None:
            self._connection = self._database.engine.raw_connection()
            if self.dialect == "sqlite":
                # Out of the pool for good: no other user inherits the slower setting.
                self._connection.detach()
                cursor = self._connection.cursor()
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.close()
        try:
            result = work(self._connection)
            self._connection.commit()
        except Exception:
            self._connection.rollback()
            raise
        return result

    def close(self) -> None:
        self._group.flush()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass(frozen=True)
class Person:
    """What a message needs to know of its subscriber."""

    id: int
    public_id: str
    email: str
    name: str | None


def delivery_for(
    settings: Settings,
    addressing: Addressing,
    *,
    edition_id: int,
    row_id: int,
    person: Person,
    template: MessageTemplate,
) -> Delivery:
    """The message of edition `edition_id` for `person`, with their own links and ids."""
    return Delivery(
        row_id=row_id,
        subscriber_id=person.id,
        template=template,
        address=partial(_addressed, settings, addressing, edition_id, person),
    )


def _addressed(
    settings: Settings, addressing: Addressing, edition_id: int, person: Person
) -> tuple[str, MessageRecipient]:
    """The envelope sender and the per-recipient values of `person`'s message."""
    secret = settings.require_secret_key()
    base = settings.site.base_url
    public_id = person.public_id
    unsubscribe_token = link_token(secret, "unsubscribe", public_id)
    envelope_from = addressing.return_path
    if addressing.verp:
        envelope_from = verp_address(
            secret, return_path=addressing.return_path, edition=edition_id, public_id=public_id
        )
    recipient = MessageRecipient(
        email=person.email,
        name=person.name,
        unsubscribe_url=f"{base}/unsubscribe/{unsubscribe_token}",
        preferences_url=f"{base}/preferences/{link_token(secret, 'preferences', public_id)}",
        message_id=message_id(
            secret, edition=edition_id, public_id=public_id, domain=addressing.domain
        ),
        list_unsubscribe_mailto=(
            f"mailto:{addressing.return_path}?subject=unsubscribe%20{unsubscribe_token}"
        ),
    )
    return envelope_from, recipient


class OutboxStore:
    """The engine's view of one edition's outbox, under one claim token."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        edition_id: int,
        templates: dict[str, MessageTemplate],
        clock: Clock,
        stop: asyncio.Event | None = None,
    ) -> None:
        self._settings = settings
        self._database = database
        self._edition_id = edition_id
        # Once set, nothing more is handed out: the engine sends what it holds and ends
        # as when the edition runs out (a worker asked to stop).
        self._stop = stop
        self._templates = templates
        self._clock = clock
        self._secret = settings.require_secret_key()
        self._addressing = Addressing.from_settings(settings)
        self.claim_token = process_token()
        # When each claimed row was first tried, and how often: for the retry schedule.
        self._history: dict[int, tuple[datetime | None, int]] = {}
        self._writer = OutcomeWriter(database, holder=self.claim_token, clock=clock)

    def close(self) -> None:
        self._writer.close()

    def claim(self, limit: int) -> list[Delivery]:
        if self._stop is not None and self._stop.is_set():
            return []
        return self._writer.transaction(partial(self._claim, limit))

    def _claim(self, limit: int, connection: PoolProxiedConnection) -> list[Delivery]:
        dialect, now = self._writer.dialect, self._clock()
        rows = claim_rows(
            connection,
            dialect=dialect,
            edition_id=self._edition_id,
            claim=self.claim_token,
            now=now,
            limit=limit,
        )
        deliveries, gone = [], []
        for row in rows:
            template = self._templates.get(row.variant)
            if row.subscriber_id is None or row.status != "confirmed" or template is None:
                gone.append(row.row_id)
                continue
            assert row.public_id is not None and row.email is not None
            self._history[row.row_id] = (row.first_attempt_at, row.attempts)
            deliveries.append(
                delivery_for(
                    self._settings,
                    self._addressing,
                    edition_id=self._edition_id,
                    row_id=row.row_id,
                    person=Person(row.subscriber_id, row.public_id, row.email, row.name),
                    template=template,
                )
            )
        skip_rows(
            connection,
            gone,
            dialect=dialect,
            claim=self.claim_token,
            now=now,
            reason="left the list",
        )
        return deliveries

    def sent(self, delivery: Delivery, reply: str) -> Ticket:
        self._history.pop(delivery.row_id, None)
        return self._writer.record(Outcome(delivery.row_id, "sent", _anonymous(reply, delivery)))

    def retry(self, delivery: Delivery, reply: str) -> Ticket:
        reply = _anonymous(reply, delivery)
        now = self._clock()
        first, attempts = self._history.pop(delivery.row_id, (None, 0))
        at = next_attempt_at(
            attempts=attempts + 1,
            first_attempt_at=first or now,
            now=now,
            first_pause=timedelta(minutes=self._settings.delivery.first_retry_minutes),
            give_up_after=timedelta(hours=self._settings.delivery.retry_for_hours),
        )
        if at is None:
            hours = self._settings.delivery.retry_for_hours
            outcome = Outcome(delivery.row_id, "failed", f"gave up after {hours:g} h: {reply}")
        else:
            outcome = Outcome(delivery.row_id, "retry", reply, next_attempt_at=at)
        return self._writer.record(outcome)

    def failed(self, delivery: Delivery, reply: str) -> Ticket:
        self._history.pop(delivery.row_id, None)
        ticket = self._writer.record(
            Outcome(delivery.row_id, "failed", _anonymous(reply, delivery))
        )
        if reply[:1] == "5":  # the server refused the address or the message for good
            self._writer.flush()  # rare: the outcome first, then the subscriber
            with self._database.session() as session:
                record_hard_bounce(
                    session,
                    delivery.subscriber_id,
                    settings=self._settings,
                    now=self._clock(),
                    reply=reply,
                    edition_id=self._edition_id,
                )
        return ticket

    def flush(self) -> None:
        self._writer.flush()

    def give_back(self, delivery: Delivery) -> None:
        self._history.pop(delivery.row_id, None)
        with self._database.session() as session:
            give_back_row(session, delivery.row_id, claim=self.claim_token, now=self._clock())

    def renew(self) -> None:
        with self._database.session() as session:
            renew_lease(session, self._edition_id, claim=self.claim_token, now=self._clock())

    def release(self) -> None:
        with self._database.session() as session:
            release_claim(session, self._edition_id, claim=self.claim_token, now=self._clock())


@dataclass(frozen=True)
class SendSummary:
    """How an edition stands after a run: the outbox counts and what this run did."""

    number: int
    counts: StateCounts
    run: RunTotals
    finished: bool  # every row is sent, failed or skipped; the edition is `sent`


def message_headers(
    settings: Settings, content: EditionContent, *, now: datetime, test: bool = False
) -> MessageHeaders:
    addressing = Addressing.from_settings(settings)
    return MessageHeaders(
        from_=addressing.from_,
        subject=content.subject,
        date=now,
        reply_to=settings.sender.reply_to,
        list_id=addressing.list_id,
        test=test,
    )


def finish_if_done(database: Database, number: int, *, now: datetime) -> tuple[StateCounts, bool]:
    """Mark edition N sent when no row of it is open; its counts, and whether it is sent."""
    with database.session() as session:
        edition = get_edition(session, number, lock=True)  # see prepare_send
        counts = state_counts(session, number)
        if counts.open == 0 and edition.state == "sending":
            move_edition(edition, "sent", now=now)
        return counts, edition.state == "sent"


async def run_delivery(
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
    return await deliver_prepared(
        settings,
        database,
        content,
        clock=clock,
        on_progress=on_progress,
        resume_hint=f", run 'newsletter send {number}' again to resume",
    )


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

    Safe beside other processes doing the same (workers.py): rows are claimed, never
    shared. DeliveryError when the server could not be reached and mail still waits.
    """
    number = content.number
    with database.session() as session:
        variants = variants_in_outbox(session, number)
        sent_times = []
        if settings.delivery.max_per_hour:  # only the hourly cap needs the last hour
            sent_times = list(sent_times_since(session, clock() - timedelta(hours=1)))
    composed = compose_variants(content, settings, variants)
    headers = message_headers(settings, content, now=clock())
    templates = {
        variant: MessageTemplate.build(mail, headers)
        for variant, mail in composed.items()
        if mail is not None
    }
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
    """`run_delivery` for synchronous callers."""
    return asyncio.run(
        run_delivery(settings, database, number, clock=clock, on_progress=on_progress)
    )


def _test_recipient(
    settings: Settings, email: str, *, edition: int, index: int, now: datetime
) -> MessageRecipient:
    """Links that lead nowhere: a test copy must not let staff unsubscribe anyone."""
    addressing = Addressing.from_settings(settings)
    base = settings.site.base_url
    return MessageRecipient(
        email=email,
        name=None,
        unsubscribe_url=f"{base}/unsubscribe/test-copy",
        preferences_url=f"{base}/preferences/test-copy",
        message_id=f"<test.{edition}.{now.timestamp():.0f}.{index}@{addressing.domain}>",
        list_unsubscribe_mailto=f"mailto:{addressing.return_path}?subject=unsubscribe%20test",
    )


async def _send_test_copies(
    settings: Settings, content: EditionContent, addresses: Sequence[str], *, now: datetime
) -> list[str]:
    mail = compose_edition(content, settings, environment=template_environment(settings))
    if mail is None:
        raise EditionError(f"edition {content.number} has no articles to send")
    template = MessageTemplate.build(mail, message_headers(settings, content, now=now, test=True))
    signer = DkimSigner.from_settings(settings)
    sender = Addressing.from_settings(settings).return_path
    refused = []
    async with await SmtpConnection.open(smtp_options(settings)) as connection:
        for index, address in enumerate(addresses):
            payload = template.render(
                _test_recipient(settings, address, edition=content.number, index=index, now=now)
            )
            if signer is not None:
                payload = signer.sign_wire(payload)
            result = await connection.send(sender, [address], payload)
            if address not in result.delivered:
                refused.append(f"{address}: {result.reply_for(address)}")
    return refused


def send_test(
    settings: Settings, database: Database, number: int, addresses: Sequence[str], *, clock: Clock
) -> None:
    """Edition N to staff addresses, marked as a test; no state changes anywhere."""
    with database.session() as session:
        content = edition_content(get_edition(session, number))
    refused = asyncio.run(_send_test_copies(settings, content, addresses, now=clock()))
    if refused:
        raise DeliveryError("the SMTP server refused the test copy for " + "; ".join(refused))


def dry_run(
    settings: Settings, database: Database, number: int, out_dir: Path, *, clock: Clock
) -> int:
    """Every message edition N would send now, as .eml files in `out_dir`; no SMTP, no state."""
    with database.session() as session:
        edition = get_edition(session, number)
        content = edition_content(edition)
        candidates = list(confirmed_subscribers(session))
        people = subscribers_by_id(session, [c.id for c in candidates])
    variants = sorted({variant_of(c.themes, settings) for c in candidates})
    composed = compose_variants(content, settings, variants)
    headers = message_headers(settings, content, now=clock())
    templates = {v: MessageTemplate.build(m, headers) for v, m in composed.items() if m}
    addressing = Addressing.from_settings(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for candidate in candidates:
        template = templates.get(variant_of(candidate.themes, settings))
        if template is None:
            continue
        person = people[candidate.id]
        delivery = delivery_for(
            settings,
            addressing,
            edition_id=number,
            row_id=0,
            person=Person(person.id, person.public_id, person.email, person.name),
            template=template,
        )
        wire = template.render(delivery.recipient)
        written += 1
        name = f"{written:06d}-{people[candidate.id].public_id}.eml"
        (out_dir / name).write_bytes(wire[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n."))
    return written
