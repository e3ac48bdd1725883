"""The job, on a real database and a real SMTP server (aiosmtpd), with a fixed clock."""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.editions.models import Edition
from newsletter.jobs.job import run_job
from newsletter.jobs.locking import job_lock
from newsletter.jobs.runs import INTERRUPTED, Run, list_runs, start_run
from subscribers.consent import Requester
from subscribers.flows import SubscriberFlows
from subscribers.management import ListManagement
from subscribers.models import ConfirmationToken, Subscriber
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.returns import RETURN_PATH
from tests.support.returns import render as render_bounce
from tests.support.smtpserver import TestSmtpServer
from tests.support.subscribers import subscribe
from tests.support.waiting import PATIENCE_SECONDS

STAFF = ["redactie@rvjeugdzorg.nl", "eindredactie@rvjeugdzorg.nl"]
BASE_URL = "https://nieuwsbrief.rvjeugdzorg.nl"
PAPER = Requester(source="cli")


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def configure(
    make_settings: Callable[..., Settings], smtp_server: TestSmtpServer
) -> Callable[..., Settings]:
    """Settings for the job; keyword arguments go into [schedule] or replace a section."""

    def build(feed: dict[str, Any] | None = None, **schedule: Any) -> Settings:
        return make_settings(
            feed=feed or {"urls": [str(SEEDS_FEED)]},
            smtp={
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "timeout_seconds": PATIENCE_SECONDS,
            },
            sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
            site={"base_url": BASE_URL},
            schedule={"staff": STAFF, **schedule},
        )

    return build


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    return configure()


def add_readers(settings: Settings, db: Database, clock: FixedClock, count: int) -> list[str]:
    people = ListManagement(settings, db, clock=clock)
    addresses = [f"lezer{i}@example.org" for i in range(count)]
    for address in addresses:
        people.add(
            address,
            name=None,
            themes=[],
            requester=PAPER,
            confirmed=True,
            consent_note="signed up on paper at the action day",
        )
    return addresses


def editions(db: Database) -> list[tuple[int, str]]:
    with db.session() as session:
        return [(e.id, e.state) for e in session.scalars(select(Edition).order_by(Edition.id))]


def the_run(db: Database, run_id: int) -> Run:
    with db.session() as session:
        return session.get_one(Run, run_id)


def test_nothing_new_drafts_nothing_and_mails_nobody(
    configure: Callable[..., Settings], db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    settings = configure(feed={"urls": [str(SEEDS_FEED)], "min_new_articles": 50})
    report = run_job(settings, db, clock=clock, trigger="cli")
    assert (report.outcome, report.exit_code) == ("nothing_new", 0)
    new = report.counts.new_articles
    assert new > 0
    assert report.summary == f"run {report.run_id}: fetched 1 feed ({new} new), nothing new"
    assert editions(db) == [] and smtp_server.received == []
    run = the_run(db, report.run_id)
    assert (run.outcome, run.trigger, run.started_at, run.finished_at) == (
        "nothing_new",
        "cli",
        clock(),
        clock(),
    )
    assert run.counts["new_articles"] == new and run.error is None


def test_a_draft_goes_to_staff_as_a_test_copy_with_a_link_to_review_it(
    settings: Settings, db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    add_readers(settings, db, clock, 2)
    report = run_job(settings, db, clock=clock, trigger="schedule")
    assert report.outcome == "ok" and report.counts.edition == 1
    assert report.summary.endswith(", drafted edition 1, test copy and review link to 2 staff")
    assert editions(db) == [(1, "draft")]
    # Subscribers get nothing; each staff address a test copy and the review link.
    assert sorted(smtp_server.delivered_to()) == sorted(STAFF * 2)
    copies = [m for m in smtp_server.messages() if m["Subject"].startswith("[TEST] ")]
    notices = [m for m in smtp_server.messages() if not m["Subject"].startswith("[TEST] ")]
    assert sorted(m["To"] for m in copies) == sorted(STAFF)
    assert sorted(m["To"] for m in notices) == sorted(STAFF)
    notice = notices[0]
    assert notice["Subject"].startswith("Editie 1 staat klaar om na te kijken: ")
    text = notice.get_content().replace("\r\n", "\n")
    assert f"\n{BASE_URL}/admin/editions/1\n" in text
    assert "Abonnees krijgen niets voordat iemand de editie goedkeurt." in text

    # A week on, nothing came in: the draft under review stays, and nobody is mailed again.
    again = run_job(settings, db, clock=clock.later(days=7), trigger="schedule")
    assert again.outcome == "nothing_new"
    assert again.summary.endswith("(0 new), nothing new since draft 1")
    assert editions(db) == [(1, "draft")] and len(smtp_server.received) == 4


def test_without_staff_the_draft_waits_and_the_summary_says_so(
    configure: Callable[..., Settings], db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    report = run_job(configure(staff=[]), db, clock=clock, trigger="cli")
    assert report.outcome == "ok"
    assert report.summary.endswith("drafted edition 1, no staff to tell (set [schedule] staff)")
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("auto_send", "send"), [(True, None), (False, True)], ids=["auto_send", "--send"]
)
def test_auto_send_or_send_sends_the_new_draft(
    configure: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
    auto_send: bool,
    send: bool | None,
) -> None:
    settings = configure(auto_send=auto_send)
    readers = add_readers(settings, db, clock, 3)
    report = run_job(settings, db, clock=clock, trigger="cli", send=send)
    assert report.outcome == "ok"
    assert report.summary.endswith("drafted edition 1, sent 3")
    assert editions(db) == [(1, "sent")]
    assert sorted(smtp_server.delivered_to()) == readers  # and no staff mail
    assert the_run(db, report.run_id).counts["sent"] == 3


def test_no_send_overrides_auto_send(
    configure: Callable[..., Settings], db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    settings = configure(auto_send=True)
    add_readers(settings, db, clock, 1)
    report = run_job(settings, db, clock=clock, trigger="cli", send=False)
    assert report.counts.staff == 2 and report.counts.sent is None
    assert editions(db) == [(1, "draft")]


def test_deliveries_waiting_for_a_retry_go_out_on_the_next_run(
    configure: Callable[..., Settings], db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    settings = configure(auto_send=True)
    readers = add_readers(settings, db, clock, 3)
    smtp_server.faults.rcpt[readers[1]] = "451 4.7.1 greylisted, try again later"
    first = run_job(settings, db, clock=clock, trigger="schedule")
    assert first.outcome == "ok"
    assert first.summary.endswith("drafted edition 1, sent 2, 1 waiting for retry")
    assert editions(db) == [(1, "sending")]
    # Not due yet: the next run leaves it waiting.
    early = run_job(settings, db, clock=clock.later(minutes=1), trigger="schedule")
    assert early.counts.retried == {}
    smtp_server.faults.rcpt.clear()
    later = run_job(settings, db, clock=clock.later(minutes=10), trigger="schedule")
    assert later.outcome == "nothing_new"
    assert later.counts.retried == {"1": 1}
    assert later.summary.startswith(f"run {later.run_id}: retried edition 1 (1 sent), fetched")
    assert editions(db) == [(1, "sent")]
    assert sorted(smtp_server.delivered_to()) == readers


def test_stale_sign_ups_and_expired_tokens_are_purged(
    settings: Settings, db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    subscribe(SubscriberFlows(settings, db, clock=clock), "twijfel@example.org")
    subscribe(SubscriberFlows(settings, db, clock=clock.later(days=3)), "laat@example.org")
    subscribe(SubscriberFlows(settings, db, clock=clock.later(days=3)), "laat@example.org")
    # Day 7.5: the first sign-up is over a week old; the other's first link (48 hours)
    # has expired, its second one not.
    report = run_job(settings, db, clock=clock.later(days=1.5), trigger="schedule")
    assert (report.counts.purged_subscribers, report.counts.purged_tokens) == (1, 1)
    assert report.summary.endswith("purged 1 unconfirmed, 1 expired tokens")
    with db.session() as session:
        assert session.scalars(select(Subscriber.email)).all() == ["laat@example.org"]
        assert len(session.scalars(select(ConfirmationToken)).all()) == 1


def test_a_failing_step_fails_the_run_the_others_still_run_and_staff_hear_once(
    configure: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
    tmp_path: Any,
) -> None:
    missing = tmp_path / "weg.xml"
    settings = configure(feed={"urls": [str(SEEDS_FEED), str(missing)]})
    flows = SubscriberFlows(settings, db, clock=clock)
    subscribe(flows, "twijfel@example.org")
    clock.advance(days=8)
    report = run_job(settings, db, clock=clock, trigger="schedule")
    assert (report.outcome, report.exit_code) == ("failed", 1)
    assert report.counts.failed_steps == ["fetch"]
    # The working feed was read, drafted from and shown to staff; the purge ran.
    assert report.counts.edition == 1 and report.counts.purged_subscribers == 1
    assert report.summary.startswith(f"run {report.run_id}: fetched 2 feeds (")
    assert ", 1 failed), drafted edition 1," in report.summary
    assert report.summary.endswith(f"failed: fetch: {missing}: no such file: {missing}")
    run = the_run(db, report.run_id)
    assert run.outcome == "failed" and run.error is not None and str(missing) in run.error
    reports = [m for m in smtp_server.messages() if "mislukt" in m["Subject"]]
    assert sorted(m["To"] for m in reports) == sorted(STAFF)  # once each
    assert reports[0]["Subject"] == f"Nieuwsbrief: run {report.run_id} is mislukt"
    text = reports[0].get_content().replace("\r\n", "\n")
    assert "25 november 2026 om 09:00, volgens schema" in text
    assert "\n- fetch:" in text and str(missing) in text


def test_a_failure_mail_that_fails_is_logged_not_raised(
    configure: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = configure(auto_send=True)
    add_readers(settings, db, clock, 2)
    smtp_server.stop()  # the send fails, and so does every mail to staff
    with caplog.at_level(logging.WARNING, logger="newsletter.jobs.job"):
        report = run_job(settings, db, clock=clock, trigger="schedule")
    assert report.outcome == "failed" and report.counts.failed_steps == ["send"]
    assert "cannot connect to SMTP server" in (report.error or "")
    assert editions(db) == [(1, "sending")]  # the next run retries it
    complaints = [r.getMessage() for r in caplog.records if "could not mail" in r.getMessage()]
    assert len(complaints) == 2
    assert the_run(db, report.run_id).outcome == "failed"


def test_a_run_that_finds_the_lock_taken_does_nothing_and_is_recorded_as_skipped(
    settings: Settings, db: Database, clock: FixedClock, smtp_server: TestSmtpServer
) -> None:
    with job_lock(db, clock=clock):
        report = run_job(settings, db, clock=clock, trigger="schedule")
    assert (report.outcome, report.exit_code) == ("skipped", 0)
    assert report.summary.startswith(f"run {report.run_id}: skipped, another run holds the lock")
    assert editions(db) == [] and smtp_server.received == []
    run = the_run(db, report.run_id)
    assert (run.outcome, run.finished_at) == ("skipped", clock())
    assert run.error is not None and run.error.startswith("another run holds the lock")


def test_a_run_left_running_by_a_dead_process_is_closed_as_interrupted(
    configure: Callable[..., Settings], db: Database, clock: FixedClock
) -> None:
    with db.session() as session:
        dead = start_run(session, trigger="schedule", now=clock())
    report = run_job(
        configure(feed={"urls": [str(SEEDS_FEED)], "min_new_articles": 50}),
        db,
        clock=clock.later(days=7),
        trigger="cli",
    )
    with db.session() as session:
        runs = {run.id: (run.outcome, run.error) for run in list_runs(session)}
    assert runs == {dead: ("failed", INTERRUPTED), report.run_id: ("nothing_new", None)}


def test_the_run_reads_the_return_mailbox_before_it_sends(
    make_settings: Callable[..., Settings],
    smtp_server: TestSmtpServer,
    db: Database,
    clock: FixedClock,
) -> None:
    settings = make_settings(
        feed={"urls": [str(SEEDS_FEED)]},
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "timeout_seconds": PATIENCE_SECONDS},
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
        site={"base_url": BASE_URL},
        delivery={"return_path": RETURN_PATH, "verp": True},
        bounces={"maildir": "returns"},
        schedule={"auto_send": True},
    )
    readers = add_readers(settings, db, clock, 2)
    box = mailbox.Maildir(settings.base_dir / "returns", create=True)
    first = run_job(settings, db, clock=clock, trigger="schedule")
    assert first.outcome == "ok" and first.counts.returned == 0
    public_id = ListManagement(settings, db, clock=clock).show(readers[0]).subscriber.public_id
    box.add(render_bounce("postfix.eml", {"anouk": public_id}, edition=1))
    box.close()

    second = run_job(settings, db, clock=clock.later(days=1), trigger="schedule")
    assert second.outcome == "nothing_new", second.summary
    assert "read 1 returned mail (1 suppressed, 0 not understood)" in second.summary
    assert ListManagement(settings, db, clock=clock).show(readers[0]).subscriber.status == (
        "bounced"
    )
    assert the_run(db, second.run_id).counts["returned"] == 1
