"""The delivery engine: claimed outbox rows out over a few reused SMTP connections.

The store hands out claimed rows in batches; `connections` workers each keep one SMTP
session open and send one message at a time. Each outcome is recorded in the store,
which commits outcomes in groups (delivery/groupcommit.py): a worker goes on with its
next message at once, but that message's final dot, which lets the server accept it,
waits until the last outcome is committed, so a crash can only repeat what was in
flight, one message per connection.

- 250 for DATA: sent.
- 4xx for MAIL, RCPT or DATA: retry later (the store schedules it, until a deadline).
- 5xx for RCPT or DATA: failed; the store marks the subscriber bounced and suppressed.
- 421, a dropped connection or a timeout: reconnect and send the same message again,
  up to RESENDS times; then it waits for a retry like a 4xx.
- The server cannot be reached at all: the message goes back unsent and the worker
  stops; when every worker stopped that way the run ends with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from newsletter.core.errors import SmtpConnectError, SmtpConnectionLost
from newsletter.delivery.groupcommit import Ticket
from newsletter.delivery.pacing import Pacer
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.messages import MessageRecipient, MessageTemplate
from newsletter.mail.smtp import SmtpConnection, SmtpOptions
from newsletter.mail.smtp_protocol import Reply

RESENDS = 3
LEASE_RENEWAL_SECONDS = 30.0


class Delivery:
    """One message to one recipient, as the store hands it out.

    What is personal to it (its links, Message-ID and VERP sender: HMACs) is made by
    `address` when first asked for, as the message goes out, not when its row is claimed:
    making it for a claim of a few hundred would hold the loop, and so every connection,
    for milliseconds.
    """

    __slots__ = ("_address", "_envelope_from", "_recipient", "row_id", "subscriber_id", "template")

    def __init__(
        self,
        *,
        row_id: int,
        subscriber_id: int,
        template: MessageTemplate,
        address: Callable[[], tuple[str, MessageRecipient]],
    ) -> None:
        self.row_id = row_id
        self.subscriber_id = subscriber_id
        self.template = template
        self._address = address
        self._envelope_from = ""
        self._recipient: MessageRecipient | None = None

    @property
    def recipient(self) -> MessageRecipient:
        return self._addressed()

    @property
    def envelope_from(self) -> str:
        """The SMTP envelope sender (MAIL FROM): the return path, or its VERP form."""
        self._addressed()
        return self._envelope_from

    def _addressed(self) -> MessageRecipient:
        if self._recipient is None:
            self._envelope_from, self._recipient = self._address()
        return self._recipient


class DeliveryStore(Protocol):
    """Where deliveries come from and where their outcomes go (delivery/store.py)."""

    def claim(self, limit: int) -> Sequence[Delivery]: ...
    # Each outcome's ticket opens once it is committed: the end of the worker's next
    # message waits for it, which is what bounds the duplicates after a crash.
    def sent(self, delivery: Delivery, reply: str) -> Ticket: ...
    def retry(self, delivery: Delivery, reply: str) -> Ticket: ...
    def failed(self, delivery: Delivery, reply: str) -> Ticket: ...
    def flush(self) -> None: ...
    def give_back(self, delivery: Delivery) -> None: ...
    def renew(self) -> None: ...
    def release(self) -> None: ...


@dataclass
class RunTotals:
    """What one run of the engine did."""

    sent: int = 0
    retry: int = 0
    failed: int = 0
    unreachable: str | None = None  # why the server could not be reached, if it could not
    failures: list[str] = field(default_factory=list)


class DeliveryEngine:
    """Sends what `store` hands out until it hands out nothing more."""

    def __init__(
        self,
        store: DeliveryStore,
        *,
        options: SmtpOptions,
        connections: int,
        pacer: Pacer,
        signer: DkimSigner | None = None,
        batch_size: int = 200,
        on_progress: Callable[[RunTotals], None] | None = None,
    ) -> None:
        self._store = store
        self._options = options
        self._connections = connections
        self._pacer = pacer
        self._signer = signer
        self._batch_size = batch_size
        self._on_progress = on_progress
        self.totals = RunTotals()
        self._stop = False
        # Claimed deliveries no worker has taken yet.
        self._backlog: deque[Delivery] = deque()
        self._exhausted = False

    async def run(self) -> RunTotals:
        renewer = asyncio.create_task(self._renew_leases())
        workers = [asyncio.create_task(self._work()) for _ in range(self._connections)]
        try:
            await asyncio.gather(*workers)
        finally:
            self._stop = True
            self._store.flush()  # what a failing worker recorded last
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            # Claimed but never attempted (a stop, or an unreachable server): give back.
            while self._backlog:
                self._store.give_back(self._backlog.popleft())
            self._store.release()
        return self.totals

    def _next(self) -> Delivery | None:
        """The next delivery to send; None once the store has no more (or on a stop).

        Workers take from one backlog, refilled a batch at a time: no queue, and no
        task switch per message.
        """
        if self._stop:
            return None
        if not self._backlog and not self._exhausted:
            batch = self._store.claim(self._batch_size)
            self._backlog.extend(batch)
            self._exhausted = not batch
        return self._backlog.popleft() if self._backlog else None

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEWAL_SECONDS)
            self._store.renew()

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.totals)

    async def _work(self) -> None:
        connection: SmtpConnection | None = None
        last: Ticket | None = None  # the outcome of this worker's previous message
        try:
            while (delivery := self._next()) is not None:
                connection, last = await self._deliver(delivery, connection, last)
        finally:
            if connection is not None:
                await connection.close()
        if last is not None:
            await last.wait()

    async def _deliver(
        self, delivery: Delivery, connection: SmtpConnection | None, last: Ticket | None
    ) -> tuple[SmtpConnection | None, Ticket | None]:
        """Send one message once `last` is committed; returns the connection to use for
        the next one and the ticket of this one's outcome."""
        try:
            payload = delivery.template.render(delivery.recipient)
        except ValueError as exc:
            return connection, self._record_failure(delivery, f"not sent: {exc}")
        if self._signer is not None:
            payload = self._signer.sign_wire(payload)
        if self._pacer.limited:
            await self._pacer.wait()
        lost: SmtpConnectionLost | None = None
        for _attempt in range(RESENDS):
            try:
                if connection is None:
                    connection = await SmtpConnection.open(self._options)
                result = await connection.send(
                    delivery.envelope_from, [delivery.recipient.email], payload, gate=last
                )
            except SmtpConnectError as exc:
                # Nobody to talk to: this message was not sent; stop this worker.
                self._store.give_back(delivery)
                self.totals.unreachable = str(exc)
                self._stop = True
                return None, last
            except SmtpConnectionLost as exc:
                connection, lost = None, exc
                continue
            return connection, self._record(delivery, result.reply_for(delivery.recipient.email))
        ticket = self._store.retry(delivery, f"connection lost: {lost}")
        self.totals.retry += 1
        self._report()
        return None, ticket

    def _record(self, delivery: Delivery, reply: Reply) -> Ticket:
        if reply.code == 250:
            ticket = self._store.sent(delivery, str(reply))
            self.totals.sent += 1
        elif reply.temporary:
            ticket = self._store.retry(delivery, str(reply))
            self.totals.retry += 1
        else:
            return self._record_failure(delivery, str(reply))
        self._report()
        return ticket

    def _record_failure(self, delivery: Delivery, reply: str) -> Ticket:
        ticket = self._store.failed(delivery, reply)
        self.totals.failed += 1
        self.totals.failures.append(f"{delivery.recipient.email}: {reply}")
        self._report()
        return ticket
