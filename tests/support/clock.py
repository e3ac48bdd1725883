"""A clock the tests move by hand."""

from __future__ import annotations

from datetime import datetime, timedelta


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward and return the new time."""
        self.now += timedelta(**delta)
        return self.now

    def later(self, **delta: float) -> FixedClock:
        """Move the clock forward and return the clock itself, to pass it on."""
        self.advance(**delta)
        return self
