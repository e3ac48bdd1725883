"""The engine's view of one edition's outbox: claims handed out, outcomes written back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy.pool import PoolProxiedConnection

from newsletter.core.clock import Clock
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.core.processes import process_token
from newsletter.delivery.addressing import Addressing, Person, delivery_for
from newsletter.delivery.engine import Delivery
from newsletter.delivery.groupcommit import GroupCommit, Ticket
from newsletter.delivery.outbox import give_back_row, release_claim, renew_lease
from newsletter.delivery.outbox_sql import (
    Outcome,
    claim_rows,
    record_outcomes,
    skip_rows,
    suppressed_among,
)
from newsletter.delivery.pacing import next_attempt_at
from newsletter.mail.messages import MessageTemplate
from subscribers.addresses import keyed_hash
from subscribers.bounces import record_hard_bounce
from subscribers.mentions import cut_address

T = TypeVar("T")


def _anonymous(reply: str, delivery: Delivery) -> str:
    """A server reply without the recipient's address in any case or form (replies often
    quote it): the outbox keeps why a message failed, not who it was for; the row says
    that already."""
    return cut_address(reply, delivery.recipient.email)


class OutcomeWriter:
    """The send's one driver connection: claims, and outcomes committed in groups.

    Outcomes go through a GroupCommit (delivery/groupcommit.py): a worker waits for its
    outcome only where the crash bound needs it, before the final dot of its next
    message, so the outcomes of several connections share one commit. Commits run on
    the loop: handing them to a thread measured slower (its wake-ups and the GIL cost
    more than the loop time saved).

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
        # Suppression is checked here, not in the snapshot: an address suppressed while
        # the edition goes out (a complaint, a bounce of another mail) is not mailed.
        hashes = {
            row.row_id: keyed_hash(row.email_key, self._secret)
            for row in rows
            if row.email_key is not None
        }
        suppressed = suppressed_among(connection, list(hashes.values()), dialect=dialect)
        deliveries, gone, refused = [], [], []
        for row in rows:
            template = self._templates.get(row.variant)
            if row.subscriber_id is None or row.status != "confirmed" or template is None:
                gone.append(row.row_id)
                continue
            if hashes.get(row.row_id) in suppressed:
                refused.append(row.row_id)
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
        skip_rows(
            connection,
            refused,
            dialect=dialect,
            claim=self.claim_token,
            now=now,
            reason="on the suppression list",
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
