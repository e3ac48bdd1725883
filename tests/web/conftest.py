"""The web app on a fresh database with aiosmtpd behind it, for the tests of tests/web."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from newsletter.core.config import Settings
from tests.support.clock import FixedClock
from tests.support.webharness import WebHarness, web_harness


@pytest.fixture
def web(make_settings: Callable[..., Settings], clock: FixedClock) -> Iterator[WebHarness]:
    """The app with default settings; a test module with other needs defines its own."""
    with web_harness(make_settings, clock) as harness:
        yield harness
