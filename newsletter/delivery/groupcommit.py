"""Group commit for a send: outcomes written together, senders held back only when needed.

A sender records each outcome and goes straight on with its next message: the envelope
and the body go out, but the final dot, the only thing that lets the server accept the
message, waits for the ticket of the last outcome to open, which it does once that
outcome is durable. So a crash or a power cut can still repeat at most one message per
connection (the accepted one whose outcome was not yet written), while the outcomes of
several connections share one commit, and one sync to disk, instead of one each.

When: the moment a sender needs an item, everything recorded so far is written. Waiting
any longer for more would hold that sender back; a commit sooner would write less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

Opened = Callable[[BaseException | None], None]


class Ticket:
    """One recorded item: open once it is written, or failed with why it could not be."""

    __slots__ = ("_callbacks", "_needed", "error", "is_open")

    def __init__(self, needed: Callable[[], None]) -> None:
        self._needed = needed  # called when someone first waits: write it now
        self.is_open = False
        self.error: BaseException | None = None
        self._callbacks: list[Opened] = []

    def on_open(self, callback: Opened) -> None:
        """Call `callback(error)` once the item is written (at once if it is)."""
        if self.is_open:
            callback(self.error)
            return
        self._callbacks.append(callback)
        self._needed()

    async def wait(self) -> None:
        """Until the item is written; raises what kept it from being written."""
        if not self.is_open:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def opened(_error: BaseException | None) -> None:
                if not future.done():
                    future.set_result(None)

            self.on_open(opened)
            await future
        if self.error is not None:
            raise self.error

    def _open(self, error: BaseException | None) -> None:
        self.is_open, self.error = True, error
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(error)


class GroupCommit(Generic[T]):
    """Recorded items, written by `write` (in one transaction) a batch at a time."""

    def __init__(self, write: Callable[[list[T]], None]) -> None:
        self._write = write
        self._items: list[T] = []
        self._tickets: list[Ticket] = []
        self.batches = 0
        self.written = 0

    def record(self, item: T) -> Ticket:
        """Add `item` to the next batch; its ticket opens once that batch is written."""
        ticket = Ticket(self.flush)
        self._items.append(item)
        self._tickets.append(ticket)
        return ticket

    def flush(self) -> None:
        """Write everything recorded so far, and open its tickets."""
        if not self._items:
            return
        items, tickets = self._items, self._tickets
        self._items, self._tickets = [], []
        error: BaseException | None = None
        try:
            self._write(items)
        except Exception as exc:  # every waiting sender learns of it
            error = exc
        self.batches += 1
        self.written += len(items)
        for ticket in tickets:
            ticket._open(error)
