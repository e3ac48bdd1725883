"""The clock: every 'now' in the product comes from a callable passed in, so tests control it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC: the default clock."""
    return datetime.now(UTC)
