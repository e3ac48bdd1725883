"""Real Postfix reports about this product's own newsletter (tests/fixtures/postfix-dsns/,
made by its produce.py) each reach the right subscriber on default settings: no VERP, so
only the signed Message-ID and unsubscribe token in the returned headers tie them."""

from __future__ import annotations

import json
import mailbox
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.returns.mailboxes import MaildirMailbox
from newsletter.returns.process import BounceReport, process_return_mailbox
from subscribers.consent import Requester
from subscribers.management import ListManagement
from subscribers.models import Subscriber
from tests.support.clock import FixedClock
from tests.support.paths import TESTS_DIR
from tests.support.returns import add_edition
from tests.support.subscribers import events_of, status_of, suppression_of

CORPUS = TESTS_DIR / "fixtures" / "postfix-dsns"
MANIFEST: dict[str, Any] = json.loads((CORPUS / "corpus.json").read_text(encoding="utf-8"))
SENDER = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"

# Report, who it is about, what the run counts it as, and their status and events after.
CASES = [
    ("rcpt-refused.eml", "anouk@refused.example", "permanent", "bounced", ["bounced"]),
    ("unknown-user-at-final-mx.eml", "bram@mx.example", "permanent", "bounced", ["bounced"]),
    ("delay-warning.eml", "carla@busy.example", "temporary", "confirmed", ["soft_bounced"]),
    # Expired after 4.2.1 replies only: a long temporary failure, counted, not the end.
    ("expired.eml", "carla@busy.example", "temporary", "confirmed", ["soft_bounced"]),
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Default delivery settings: VERP off, so the envelope names nobody.
    return make_settings(
        sender={"from": SENDER},
        delivery={"return_path": MANIFEST["return_path"]},
        bounces={"maildir": "returns"},
    )


@dataclass
class Run:
    settings: Settings
    db: Database
    clock: FixedClock

    def process(self, *names: str) -> BounceReport:
        path = self.settings.base_dir / "returns"
        box = mailbox.Maildir(path, create=True)
        for name in names:
            box.add((CORPUS / name).read_bytes())
        box.close()
        reader = MaildirMailbox(path)
        try:
            return process_return_mailbox(self.settings, self.db, mailbox=reader, clock=self.clock)
        finally:
            reader.close()

    def state(self, email: str) -> tuple[str | None, list[str]]:
        events = events_of(self.db, email)
        assert events[0] == "added_by_staff"
        return status_of(self.db, email), events[1:]


@pytest.fixture
def run(settings: Settings, db: Database, clock: FixedClock) -> Run:
    """The subscribers the reports are about, with the public ids they had when sent."""
    people = ListManagement(settings, db, clock=clock)
    for email, public_id in MANIFEST["public_ids"].items():
        people.add(
            email,
            name=None,
            themes=[],
            requester=Requester(source="cli"),
            confirmed=True,
            consent_note="signed up on paper",
        )
        with db.session() as session:
            session.execute(
                update(Subscriber).where(Subscriber.email == email).values(public_id=public_id)
            )
    with db.session() as session:
        subscriber_ids = list(session.scalars(select(Subscriber.id)))
    assert add_edition(db, clock, subscriber_ids) == MANIFEST["edition"]
    clock.advance(hours=1)
    return Run(settings, db, clock)


def test_the_corpus_is_what_produce_py_says_it_is() -> None:
    reports = {item["file"]: item["recipient"] for item in MANIFEST["reports"]}
    assert reports == {name: email for name, email, *_ in CASES}
    for name, email, *_ in CASES:
        raw = (CORPUS / name).read_bytes()
        assert b"Reporting-MTA: dns; mail.rvjeugdzorg.nl" in raw
        assert f"Final-Recipient: rfc822; {email}".encode() in raw
        # The original came back as headers only (we asked RET=HDRS), sent without VERP.
        assert b"Content-Type: text/rfc822-headers" in raw
        assert b"Return-Path: <bounces@rvjeugdzorg.nl>" in raw


@pytest.mark.parametrize(("name", "email", "kind", "status", "events"), CASES)
def test_a_real_postfix_report_reaches_its_subscriber_without_verp(
    run: Run, name: str, email: str, kind: str, status: str, events: list[str]
) -> None:
    report = run.process(name)

    assert (report.permanent, report.temporary) == ((1, 0) if kind == "permanent" else (0, 1))
    assert report.not_understood == 0
    assert report.probed == 0  # tied by what we signed: no probe needed
    assert run.state(email) == (status, events)
    assert suppression_of(run.db, email) == ("bounced" if status == "bounced" else None)
    for other in MANIFEST["public_ids"]:
        if other != email:
            assert run.state(other) == ("confirmed", [])


def test_the_whole_corpus_at_once_and_a_second_pass_changes_nothing(run: Run) -> None:
    names = [name for name, *_ in CASES]
    first = run.process(*names)
    after_first = {email: run.state(email) for email in MANIFEST["public_ids"]}

    second = run.process(*names)

    assert (first.permanent, first.temporary, first.not_understood) == (2, 2, 0)
    assert after_first == {
        "anouk@refused.example": ("bounced", ["bounced"]),
        "bram@mx.example": ("bounced", ["bounced"]),
        "carla@busy.example": ("confirmed", ["soft_bounced", "soft_bounced"]),
        "daan@example.nl": ("confirmed", []),
    }
    assert second.not_understood == 0
    assert {email: run.state(email) for email in MANIFEST["public_ids"]} == after_first
