"""The mail queue's sender: a task in the web process that sends what is due, in batches.

It claims up to a batch of due mails, builds them in a thread, sends them one after the
other over one SMTP connection (kept open while there is more), and writes their
outcomes, with the caller's log of them (`record`), in one transaction per batch. A
request wakes it (`wake`, from any thread); otherwise it looks again every
`poll_seconds`, for retries that became due and for what another process left.

A refusal (5xx) is final and logged; a temporary one (4xx) or a server that cannot be
reached leaves the mail queued for a retry after a back-off (queue.py). Stopping
(`stop`) lets the batch in hand finish; what is left stays queued for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from newsletter.core.clock import Clock
from newsletter.core.db import Database
from newsletter.core.errors import DeliveryError, MailRefused
from newsletter.mail.mailer import OutgoingMail, SmtpMailer
from newsletter.mail.queue import Claimed, Outcome, claim_due, settle
from newsletter.mail.smtp import SmtpConnection

log = logging.getLogger(__name__)

# Writes the final outcomes (mail, error or None) in the batch's transaction.
Record = Callable[[Session, Sequence[tuple[OutgoingMail, str | None]]], None]
BATCH = 200
POLL_SECONDS = 30.0
# After a wake-up, the sender lets this long pass before it claims: sign-ups that come
# meanwhile share the batch's two transactions and its connection.
GATHER_SECONDS = 0.05
# An SMTP connection idle this long is closed (servers drop idle clients after minutes).
IDLE_SECONDS = 10.0


class QueuedMailSender:
    """Sends the queued mails of `database` through `mailer`'s SMTP server."""

    def __init__(
        self,
        database: Database,
        mailer: SmtpMailer,
        *,
        clock: Clock,
        record: Record,
        batch: int = BATCH,
        poll_seconds: float = POLL_SECONDS,
        gather_seconds: float = GATHER_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._database = database
        self._mailer = mailer
        self._clock = clock
        self._record = record
        self._batch = batch
        self._poll_seconds = poll_seconds
        self._gather_seconds = gather_seconds
        self._idle_seconds = idle_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wanted: asyncio.Event | None = None
        self._stopping = False
        self._wake_pending = False
        self._connection: SmtpConnection | None = None

    def wake(self) -> None:
        """Say that mail was queued (after its commit); safe from any thread, a no-op
        before `run`. Once per batch: the sign-ups that come before the sender claims
        are in its claim anyway (a wake-up per request cost them a twelfth of their time)."""
        loop, wanted = self._loop, self._wanted
        if self._wake_pending or loop is None or wanted is None or loop.is_closed():
            return
        self._wake_pending = True
        loop.call_soon_threadsafe(wanted.set)

    def stop_requested(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Finish the batch in hand and return from `run` (call on run's loop)."""
        self._stopping = True
        if self._wanted is not None:
            self._wanted.set()

    async def run(self) -> None:
        """Send what is due until `stop`; an unexpected error is logged, never fatal."""
        self._loop = asyncio.get_running_loop()
        wanted = self._wanted = asyncio.Event()
        try:
            while not self.stop_requested():
                # Before the claim: a mail committed after it wakes the sender again.
                self._wake_pending = False
                wanted.clear()
                try:
                    handled = await self.send_due()
                except Exception:  # the web app must keep answering: log, wait, go on
                    log.exception("sending queued mail failed; trying again later")
                    handled = 0
                if handled >= self._batch:
                    continue  # probably more waiting
                if self.stop_requested():
                    break
                woken = await self._woken_within(self._idle_seconds)
                if not woken:
                    await self.close()
                    woken = await self._woken_within(self._poll_seconds)
                if woken and not self.stop_requested():
                    await asyncio.sleep(self._gather_seconds)
        finally:
            await self.close()

    async def _woken_within(self, seconds: float) -> bool:
        assert self._wanted is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wanted.wait(), seconds)
            return True
        return False

    async def close(self) -> None:
        """Close the SMTP connection, if one is open (`run` does when idle, and at the end)."""
        await self._close_connection()

    async def send_due(self) -> int:
        """Claim, send and settle one batch of due mails; how many were claimed. The
        connection stays open for the next batch (see `close`)."""
        claimed, payloads = await asyncio.to_thread(self._claim_and_build)
        if not claimed:
            return 0
        outcomes: list[Outcome] = []
        for index, (item, payload) in enumerate(zip(claimed, payloads, strict=True)):
            try:
                connection = await self._open_connection()
                await self._mailer.send_on(connection, item.mail, payload)
            except MailRefused as exc:
                outcomes.append(Outcome(item, str(exc), retry=not exc.permanent))
            except DeliveryError as exc:
                # The server went away or never answered: this one and the rest later.
                await self._close_connection()
                outcomes.extend(Outcome(rest, str(exc), retry=True) for rest in claimed[index:])
                break
            else:
                outcomes.append(Outcome(item))
        await asyncio.to_thread(self._settle, outcomes)
        return len(claimed)

    def _claim_and_build(self) -> tuple[list[Claimed], list[bytes]]:
        with self._database.one_writer(), self._database.session() as session:
            claimed = claim_due(session, now=self._clock(), limit=self._batch)
        return claimed, [self._mailer.payload(item.mail) for item in claimed]

    def _settle(self, outcomes: Sequence[Outcome]) -> None:
        with self._database.one_writer(), self._database.session() as session:
            done = settle(session, outcomes, now=self._clock())
            if done:
                self._record(session, done)

    async def _open_connection(self) -> SmtpConnection:
        if self._connection is None or self._connection.closed:
            self._connection = await SmtpConnection.open(self._mailer.options)
        return self._connection

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()  # never raises; a broken one is closed already
