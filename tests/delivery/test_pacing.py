"""Pacing: the rate and hourly cap with a controlled clock, and the retry schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from newsletter.delivery.pacing import Pacer, next_attempt_at


class FakeTime:
    """A monotonic clock that only moves when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run_waits(pacer: Pacer, count: int) -> None:
    async def go() -> None:
        for _ in range(count):
            await pacer.wait()

    asyncio.run(go())


def test_rate_per_second_spaces_messages_without_an_initial_burst() -> None:
    clock = FakeTime()
    pacer = Pacer(per_second=10, per_hour=0, monotonic=clock.monotonic, sleep=clock.sleep)
    run_waits(pacer, 21)
    assert (
        round(clock.now - 1000.0, 6) == 2.0
    )  # 21 messages at 10/s: the last one 2 s after the first


def test_no_limits_never_sleeps() -> None:
    clock = FakeTime()
    pacer = Pacer(per_second=0, per_hour=0, monotonic=clock.monotonic, sleep=clock.sleep)
    run_waits(pacer, 1000)
    assert clock.slept == []


def test_hourly_cap_counts_sends_from_before_a_restart() -> None:
    clock = FakeTime()
    earlier = [clock.now - 3000 + i for i in range(5)]  # five sent 50 minutes ago
    pacer = Pacer(
        per_second=0,
        per_hour=6,
        sent_in_last_hour=earlier,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    run_waits(pacer, 2)
    # One fits at once; the next waits until the oldest earlier send is an hour old.
    assert clock.slept == [600.0]


def test_retry_pauses_double_and_stop_at_the_deadline() -> None:
    start = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    schedule = {"first_pause": timedelta(minutes=5), "give_up_after": timedelta(hours=24)}
    pauses = [
        next_attempt_at(attempts=n, first_attempt_at=start, now=start, **schedule)  # type: ignore[arg-type]
        for n in (1, 2, 3, 6, 10)
    ]
    assert [p - start for p in pauses if p] == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=20),
        timedelta(hours=2),
        timedelta(hours=2),
    ]
    near_end = start + timedelta(hours=23, minutes=59)
    assert next_attempt_at(
        attempts=9,
        first_attempt_at=start,
        now=near_end,
        **schedule,  # type: ignore[arg-type]
    ) == start + timedelta(hours=24)
    assert (
        next_attempt_at(
            attempts=9,
            first_attempt_at=start,
            now=start + timedelta(hours=24),
            **schedule,  # type: ignore[arg-type]
        )
        is None
    )
