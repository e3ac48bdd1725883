"""Fixtures of the send tests: a real SMTP server, settings that send to it, an edition."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.editions.drafting import draft_edition
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.smtpserver import TestSmtpServer
from tests.support.waiting import PATIENCE_SECONDS


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp_server: TestSmtpServer) -> Settings:
    return make_settings(
        feed={"urls": [str(SEEDS_FEED)]},
        smtp={
            "host": "127.0.0.1",
            "port": smtp_server.port,
            "max_connections": 3,
            "timeout_seconds": PATIENCE_SECONDS,
        },
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
        site={"base_url": "https://nieuwsbrief.rvjeugdzorg.nl"},
    )


@pytest.fixture
def edition(settings: Settings, db: Database, clock: FixedClock) -> int:
    fetch_all(settings, db, clock=clock)
    result = draft_edition(settings, db, clock=clock.later(minutes=1))
    assert result.number is not None
    return result.number
