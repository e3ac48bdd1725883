"""Copies that change nothing: a test copy to staff and a dry run leave no trace."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.delivery.copies import dry_run, send_test
from newsletter.delivery.outbox import OutboxRow
from newsletter.editions.lifecycle import get_edition
from tests.support.clock import FixedClock
from tests.support.sending import add_subscribers
from tests.support.smtpserver import TestSmtpServer


def test_test_copies_and_dry_runs_touch_no_state(
    settings: Settings,
    db: Database,
    clock: FixedClock,
    edition: int,
    smtp_server: TestSmtpServer,
    tmp_path: Path,
) -> None:
    add_subscribers(settings, db, clock, 3)
    send_test(settings, db, edition, ["redactie@rvjeugdzorg.nl"], clock=clock)
    [copy] = smtp_server.messages()
    assert copy["Subject"].startswith("[TEST] ")
    assert copy["To"] == "redactie@rvjeugdzorg.nl"
    written = dry_run(settings, db, edition, tmp_path / "eml", clock=clock)
    assert written == 3 and len(list((tmp_path / "eml").glob("*.eml"))) == 3
    with db.session() as session:
        assert get_edition(session, edition).state == "draft"
        assert session.scalars(select(OutboxRow)).all() == []
