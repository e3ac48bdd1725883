"""The mail queue and its sender, against a real aiosmtpd server and a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from newsletter.core.config import Settings
from newsletter.core.db import Database, open_database
from newsletter.mail.mailer import OutgoingMail, SmtpMailer
from newsletter.mail.queue import LEASE, MAX_AGE, claim_due, enqueue, queued_rows
from newsletter.mail.queue_sender import QueuedMailSender
from tests.support.clock import FixedClock
from tests.support.smtpserver import TestSmtpServer, free_port
from tests.support.waiting import PATIENCE_SECONDS, POLL_SECONDS

Logged = list[tuple[str, str | None]]


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def database(make_settings: Callable[..., Settings]) -> Iterator[Database]:
    database = open_database(make_settings().database_url)
    yield database
    database.dispose()


def sender_for(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    port: int,
    logged: Logged,
    *,
    poll_seconds: float = 30.0,
) -> QueuedMailSender:
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": port, "timeout_seconds": 30},
        sender={"from": "Nieuwsbrief <nieuwsbrief@example.org>"},
    )

    def record(_session: Session, done: Sequence[tuple[OutgoingMail, str | None]]) -> None:
        logged.extend((mail.to, error) for mail, error in done)

    return QueuedMailSender(
        database,
        SmtpMailer(settings, clock=clock),
        clock=clock,
        record=record,
        poll_seconds=poll_seconds,
    )


def confirmation(to: str) -> OutgoingMail:
    return OutgoingMail(
        to=to,
        subject="Bevestig je aanmelding",
        text="Klik op de link: https://example.org/confirm/abc",
        html="<p>Klik op de link</p>",
        kind="confirmation",
    )


def queue(database: Database, clock: FixedClock, *addresses: str) -> None:
    with database.session() as session:
        enqueue(session, [confirmation(address) for address in addresses], now=clock())


def send_due(sender: QueuedMailSender) -> int:
    """One batch, and the connection closed after it (as `run` does once idle)."""

    async def once() -> int:
        try:
            return await sender.send_due()
        finally:
            await sender.close()

    return asyncio.run(once())


def rows(database: Database) -> list[dict[str, object]]:
    with database.session() as session:
        return queued_rows(session)


def test_queued_mails_go_out_over_one_connection_and_leave_the_queue(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    queue(database, clock, "een@example.org", "twee@example.org")
    sender = sender_for(make_settings, database, clock, smtp_server.port, logged)

    assert send_due(sender) == 2

    assert smtp_server.delivered_to() == ["een@example.org", "twee@example.org"]
    message = smtp_server.messages()[0]
    assert message["Subject"] == "Bevestig je aanmelding"
    plain = message.get_body(("plain",))
    assert plain is not None and "https://example.org/confirm/abc" in plain.get_content()
    assert logged == [("een@example.org", None), ("twee@example.org", None)]
    assert rows(database) == []
    assert len(smtp_server.helo_names) == 1  # one session for both


def test_a_temporary_refusal_keeps_the_mail_until_its_retry_is_due(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    smtp_server.faults.data["ouder@example.org"].append("451 4.3.0 probeer later")
    queue(database, clock, "ouder@example.org")
    sender = sender_for(make_settings, database, clock, smtp_server.port, logged)

    send_due(sender)
    [waiting] = rows(database)
    assert waiting["attempts"] == 1
    assert "451" in str(waiting["last_error"])
    assert logged == [] and smtp_server.received == []

    assert send_due(sender) == 0  # not due yet: nothing is tried
    clock.advance(minutes=1)
    assert send_due(sender) == 1

    assert smtp_server.delivered_to() == ["ouder@example.org"]
    assert logged == [("ouder@example.org", None)]
    assert rows(database) == []


def test_an_unreachable_server_loses_no_mail(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    queue(database, clock, "een@example.org", "twee@example.org")
    nobody = sender_for(make_settings, database, clock, free_port(), logged)

    send_due(nobody)
    assert [row["attempts"] for row in rows(database)] == [1, 1]
    assert logged == []

    clock.advance(minutes=1)
    send_due(sender_for(make_settings, database, clock, smtp_server.port, logged))
    assert sorted(smtp_server.delivered_to()) == ["een@example.org", "twee@example.org"]
    assert rows(database) == []


def test_a_connection_dropped_during_a_message_leaves_it_and_the_rest_queued(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    smtp_server.faults.drop_in_data.add("een@example.org")
    queue(database, clock, "een@example.org", "twee@example.org")
    sender = sender_for(make_settings, database, clock, smtp_server.port, logged)

    send_due(sender)
    assert len(rows(database)) == 2 and logged == []

    clock.advance(minutes=1)
    send_due(sender)
    assert smtp_server.delivered_to() == ["een@example.org", "twee@example.org"]
    assert rows(database) == []


def test_a_permanent_refusal_is_final_and_logged_with_the_reply(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    smtp_server.faults.rcpt["weg@example.org"] = "550 5.1.1 onbekend"
    queue(database, clock, "weg@example.org", "wel@example.org")
    sender = sender_for(make_settings, database, clock, smtp_server.port, logged)

    send_due(sender)

    assert smtp_server.delivered_to() == ["wel@example.org"]
    [(to, error), sent] = logged
    assert to == "weg@example.org" and error is not None and "550" in error
    assert sent == ("wel@example.org", None)
    assert rows(database) == []


def test_a_mail_still_refused_after_two_days_is_given_up_and_logged(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    queue(database, clock, "vol@example.org")
    smtp_server.faults.data["vol@example.org"].extend(["452 4.2.2 mailbox vol"] * 2)
    sender = sender_for(make_settings, database, clock, smtp_server.port, logged)
    send_due(sender)
    assert logged == []

    clock.advance(seconds=MAX_AGE.total_seconds())
    send_due(sender)

    [(to, error)] = logged
    assert to == "vol@example.org"
    assert error is not None and error.startswith("given up after 2 tries") and "452" in error
    assert rows(database) == [] and smtp_server.received == []


def test_a_mail_claimed_by_a_sender_that_died_goes_out_once_its_lease_ran_out(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    queue(database, clock, "ouder@example.org")
    with database.session() as session:  # a sender that claimed it, then died
        assert len(claim_due(session, now=clock(), limit=10)) == 1
    sender = sender_for(make_settings, database, clock, smtp_server.port, logged)

    assert send_due(sender) == 0
    clock.advance(seconds=(LEASE + timedelta(seconds=1)).total_seconds())
    assert send_due(sender) == 1
    assert smtp_server.delivered_to() == ["ouder@example.org"]


def test_the_running_sender_is_woken_by_a_queued_mail_and_stops_when_asked(
    make_settings: Callable[..., Settings],
    database: Database,
    clock: FixedClock,
    smtp_server: TestSmtpServer,
) -> None:
    logged: Logged = []
    # It would look by itself only after the longest wait of the tests: only `wake` helps.
    sender = sender_for(
        make_settings, database, clock, smtp_server.port, logged, poll_seconds=PATIENCE_SECONDS
    )

    async def scenario() -> None:
        task = asyncio.create_task(sender.run())
        await asyncio.sleep(0)  # it started and found nothing
        for address in ("een@example.org", "twee@example.org"):
            await asyncio.to_thread(queue, database, clock, address)
            sender.wake()
        deadline = asyncio.get_running_loop().time() + PATIENCE_SECONDS
        while len(logged) < 2:
            assert asyncio.get_running_loop().time() < deadline, "the mails did not go out"
            await asyncio.sleep(POLL_SECONDS)
        sender.stop()
        await asyncio.wait_for(task, PATIENCE_SECONDS)

    asyncio.run(scenario())
    assert sorted(smtp_server.delivered_to()) == ["een@example.org", "twee@example.org"]
    assert rows(database) == []
