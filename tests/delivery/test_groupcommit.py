"""Group commit: what a sender waits for is written with everything recorded before it."""

from __future__ import annotations

import asyncio

import pytest

from newsletter.delivery.groupcommit import GroupCommit


def test_nothing_is_written_until_someone_waits_then_everything_is() -> None:
    batches: list[list[str]] = []
    group: GroupCommit[str] = GroupCommit(batches.append)
    first, second, third = (group.record(item) for item in ("a", "b", "c"))
    assert batches == [] and not first.is_open

    opened: list[BaseException | None] = []
    second.on_open(opened.append)

    assert batches == [["a", "b", "c"]]
    assert opened == [None]
    assert first.is_open and second.is_open and third.is_open
    assert (group.batches, group.written) == (1, 3)


def test_a_ticket_that_is_open_calls_back_at_once() -> None:
    group: GroupCommit[str] = GroupCommit(lambda items: None)
    ticket = group.record("a")
    group.flush()
    called: list[BaseException | None] = []
    ticket.on_open(called.append)
    assert called == [None]


def test_what_is_recorded_later_goes_into_the_next_batch() -> None:
    batches: list[list[str]] = []
    group: GroupCommit[str] = GroupCommit(batches.append)
    group.record("a").on_open(lambda error: None)
    later = group.record("b")
    assert not later.is_open
    group.flush()
    assert batches == [["a"], ["b"]]


def test_a_failed_write_fails_every_ticket_of_its_batch() -> None:
    def write(items: list[str]) -> None:
        raise OSError("disk full")

    group: GroupCommit[str] = GroupCommit(write)
    first, second = group.record("a"), group.record("b")

    async def wait_for_second() -> None:
        await second.wait()

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(wait_for_second())
    assert isinstance(first.error, OSError) and first.is_open


def test_wait_returns_once_written() -> None:
    batches: list[list[str]] = []
    group: GroupCommit[str] = GroupCommit(batches.append)

    async def go() -> None:
        ticket = group.record("a")
        await ticket.wait()
        assert ticket.is_open and ticket.error is None

    asyncio.run(go())
    assert batches == [["a"]]
