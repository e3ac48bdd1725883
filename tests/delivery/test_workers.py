"""Send workers: `newsletter send N --workers`, `newsletter worker`, and several at once.

The big test runs four worker processes on one edition of 2,000 recipients against
Postfix's smtp-sink, which dumps every message it accepted (and only those: a
transaction cut off before its final dot is thrown away), and kills one worker midway.
Every recipient must get a copy; copies beyond the first only for what the killed worker
had in flight (one per open connection); every copy with its own Message-ID.

No test here waits for a time: each waits for what it needs to see (a worker started, a
message held at the server, a worker caught mid-send), with the suite's generous cap.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.core.clock import utc_now
from newsletter.core.config import load_settings
from newsletter.core.db import Database, open_database
from newsletter.core.processes import HOST_CHARS
from newsletter.delivery.outbox import OutboxRow, StateCounts, state_counts
from newsletter.editions.lifecycle import get_edition
from newsletter.mail.identities import message_id
from subscribers.models import Subscriber
from subscribers.tokens import new_public_id
from tests.support.paths import SEEDS_FEED
from tests.support.smtpserver import TestSmtpServer, free_port
from tests.support.waiting import PATIENCE_SECONDS, exit_code, wait_until

SECRET = "test-secret-key-0123456789abcdef"
ENV = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET}
DOMAIN = "rvjeugdzorg.nl"
SENDER = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def write_config(path: Path, database_url: str, port: int, smtp: str = "", feed: str = "") -> Path:
    """Settings for the command; `smtp` and `feed`: more lines for those sections."""
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[feed]\nurls = ["{SEEDS_FEED}"]\n{feed}'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\ntimeout_seconds = {PATIENCE_SECONDS}\n{smtp}'
        f'[sender]\nfrom = "{SENDER}"\n',
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["--config", str(config), *args],
        env={"NEWSLETTER_SECRET_KEY": SECRET},
        catch_exceptions=False,
    )


def open_db(config: Path) -> Database:
    return open_database(load_settings(config, env={"NEWSLETTER_SECRET_KEY": SECRET}).database_url)


def add_confirmed(database: Database, count: int) -> dict[str, str]:
    """`count` confirmed subscribers straight into the table; their public id by address."""
    now = utc_now()
    public_ids = {f"lezer{i}@example.org": new_public_id() for i in range(count)}
    rows: list[dict[str, object]] = [
        {
            "public_id": public_ids[address],
            "email": address,
            "email_key": address,
            "name": None,
            "status": "confirmed",
            "themes": [],
            "created_at": now,
            "updated_at": now,
            "confirmed_at": now,
        }
        for address in public_ids
    ]
    with database.session() as session:
        for start in range(0, count, 5000):
            session.execute(insert(Subscriber), rows[start : start + 5000])
    return public_ids


def draft(config: Path) -> str:
    assert run(config, "fetch").exit_code == 0
    drafted = run(config, "draft", "--json")
    assert drafted.exit_code == 0, drafted.output
    return str(json.loads(drafted.stdout)["number"])


def status(config: Path, number: str) -> dict[str, object]:
    result = run(config, "edition", "status", number, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def worker_process(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "worker", *args],
            env=ENV,
            stdout=stderr,
            stderr=stderr,
        )


# -- handing over, and one worker ---------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path: Path, database_url: str, smtp_server: TestSmtpServer) -> Path:
    return write_config(tmp_path / "newsletter.toml", database_url, smtp_server.port)


@pytest.fixture
def edition(config: Path) -> str:
    number = draft(config)
    database = open_db(config)
    try:
        add_confirmed(database, 3)
    finally:
        database.dispose()
    return number


def test_a_worker_sends_what_send_workers_queued_and_then_finds_nothing(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    queued = run(config, "send", edition, "--workers", "--yes")
    assert queued.exit_code == 0, queued.output
    assert queued.stdout.startswith(f"edition {edition}: 3 queued for the workers")
    assert "newsletter worker" in queued.stdout
    assert smtp_server.received == []
    assert status(config, edition)["state"] == "sending"

    worked = run(config, "worker", "--once")
    assert worked.exit_code == 0, worked.output
    assert worked.stdout.strip() == (
        f"edition {edition}: 3 sent, 0 failed permanently, 0 waiting for retry, 0 skipped; "
        "this worker: 3 sent, 0 failed, 0 to retry; the edition is sent"
    )
    assert sorted(smtp_server.delivered_to()) == [f"lezer{i}@example.org" for i in range(3)]
    assert status(config, edition)["state"] == "sent"

    again = run(config, "worker", "--once")
    assert (again.exit_code, again.stdout.strip()) == (0, "nothing due")
    assert len(smtp_server.received) == 3


def test_a_worker_leaves_drafts_alone(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    result = run(config, "worker", "--once")
    assert (result.exit_code, result.stdout.strip()) == (0, "nothing due")
    assert smtp_server.received == []
    assert status(config, edition)["state"] == "draft"


def test_worker_exit_codes_are_those_of_send(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    smtp_server.faults.rcpt["lezer1@example.org"] = "451 4.7.1 greylisted, try later"
    assert run(config, "send", edition, "--workers", "--yes").exit_code == 0
    waiting = run(config, "worker", "--once")
    assert waiting.exit_code == 75, waiting.output
    assert "1 waiting for retry" in waiting.stdout and "this worker: 2 sent" in waiting.stdout
    # Not due yet: nothing to do, and that is no failure.
    assert run(config, "worker", "--once").stdout.strip() == "nothing due"


def test_a_permanent_failure_makes_the_worker_exit_1(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    smtp_server.faults.rcpt["lezer2@example.org"] = "550 5.1.1 unknown user"
    assert run(config, "send", edition, "--workers", "--yes").exit_code == 0
    result = run(config, "worker", "--once")
    assert result.exit_code == 1
    assert "1 failed permanently" in result.stdout
    assert "failed: lezer2@example.org: 550 5.1.1 unknown user" in result.stderr


def test_an_unreachable_relay_is_one_line_and_everything_waits(
    tmp_path: Path, database_url: str, edition: str, config: Path
) -> None:
    assert run(config, "send", edition, "--workers", "--yes").exit_code == 0
    closed = write_config(tmp_path / "closed.toml", database_url, free_port())
    result = run(closed, "worker", "--once")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: edition {edition}: cannot connect to SMTP server")
    assert line.endswith("3 message(s) wait")
    counts = status(config, edition)["counts"]
    assert isinstance(counts, dict) and counts["sent"] == 0
    assert counts["pending"] + counts["sending"] == 3  # given back: due again at once


def test_a_worker_takes_over_at_once_the_rows_of_a_dead_sender_on_its_host(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    assert run(config, "send", edition, "--workers", "--yes").exit_code == 0
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid names a process of this host that is gone
    dead = f"{socket.gethostname()[:HOST_CHARS]}:{finished.pid}:0a"
    database = open_db(config)
    try:
        with database.session() as session:
            ids = sorted(session.scalars(select(OutboxRow.id)))
            lease = utc_now() + timedelta(hours=1)
            for row_id, holder in zip(ids, (dead, dead, "elsewhere:1:0b"), strict=True):
                session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == row_id)
                    .values(state="sending", claim=holder, lease_until=lease)
                )
        # The two rows of the dead process here go at once; the one of a sender on another
        # machine waits for its lease (that sender may still be sending it).
        result = run(config, "worker", "--once")
        assert result.exit_code == 75, result.output
        assert sorted(smtp_server.delivered_to()) == ["lezer0@example.org", "lezer1@example.org"]
        with database.session() as session:
            assert state_counts(session, int(edition)).sending == 1
    finally:
        database.dispose()


def test_sigterm_stops_a_worker_after_its_batch_and_nothing_goes_twice(
    tmp_path: Path, database_url: str, smtp_server: TestSmtpServer
) -> None:
    # One connection, and the server holds its first message until the worker has taken
    # the signal: the worker is surely mid-send when it is told to stop. More recipients
    # than one claim takes (the engine claims 200 at a time): some were never handed out.
    recipients = 500
    single = write_config(
        tmp_path / "single.toml", database_url, smtp_server.port, smtp="max_connections = 1\n"
    )
    number = draft(single)
    database = open_db(single)
    try:
        add_confirmed(database, recipients)
        assert run(single, "send", number, "--workers", "--yes").exit_code == 0
        log = tmp_path / "worker.log"
        first = smtp_server.hold("lezer0@example.org")
        process = worker_process(single, log, "--poll-seconds", "0.2")
        try:
            wait_until(first.reached.is_set, what="the worker's first message")
            process.send_signal(signal.SIGTERM)
            wait_until(
                lambda: "SIGTERM: stopping after the current batch" in log.read_text(),
                what="the worker to take SIGTERM",
            )
            first.release()
            assert exit_code(process, what="the worker after SIGTERM") == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
        with database.session() as session:
            stopped = state_counts(session, int(number))
            held = session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.state == "sending", OutboxRow.lease_until > utc_now())
            )
        # It finished the messages it had begun, gave back the rest and holds nothing.
        assert held == 0 and 0 < stopped.sent < recipients
        assert stopped.open == recipients - stopped.sent
        assert stopped.sent == len(smtp_server.received)
    finally:
        database.dispose()
    assert run(single, "worker", "--once").exit_code == 0
    received = Counter(smtp_server.delivered_to())
    assert len(received) == recipients and set(received.values()) == {1}


# -- four workers, one killed -------------------------------------------------------

# Big enough, and no bigger: the engine claims 200 rows at a time, so four workers take
# 800 at first and come back for more until the tenth claim; every worker holds rows
# while the others send, and the one killed mid-send dies holding rows (and up to one
# message per connection in flight) that the others must take over. What is checked is
# who got what, not how fast; more recipients would only make the test slower.
RECIPIENTS = 2_000
WORKERS = 4
CONNECTIONS = 4  # per worker
DUMP_MARK = b"\n=== smtp-sink message ===\n"


class DumpingSink:
    """Postfix's smtp-sink, appending every message it accepted to one dump file."""

    def __init__(self) -> None:
        # smtp-sink run as root must drop to `nobody`, who must be able to write here.
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-sink-"))
        self.folder.chmod(0o777)
        self.dump = self.folder / "dump"
        self.port = free_port()
        command = [
            SMTP_SINK,
            "-D",
            str(self.dump),
            "-S",
            DUMP_MARK.decode().replace("\n", "\\n"),
            f"127.0.0.1:{self.port}",
            "1000",
        ]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "nobody"]
        self.process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            wait_until(self._listening, what="smtp-sink to accept connections")
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        assert self.process.poll() is None, "smtp-sink ended while starting"
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=PATIENCE_SECONDS).close()
        except OSError:
            return False
        return True

    def messages(self) -> Iterator[tuple[str, str]]:
        """(recipient, Message-ID) of each accepted message, in the order they came."""
        data = self.dump.read_bytes() if self.dump.exists() else b""
        for match in re.finditer(re.escape(DUMP_MARK), data):
            head = data[match.end() : data.find(b"\n\n", match.end())]
            [recipient] = re.findall(rb"^X-Rcpt-Args: <([^>]*)>", head, re.MULTILINE)
            [identifier] = re.findall(rb"^Message-ID: (\S+)", head, re.MULTILINE | re.IGNORECASE)
            yield recipient.decode(), identifier.decode()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def sink() -> Iterator[DumpingSink]:
    if not Path(SMTP_SINK).exists():
        pytest.skip("smtp-sink not found: install Debian's postfix package (make smtp-tools)")
    server = DumpingSink()
    yield server
    server.stop()


class Outbox:
    """What the test reads of one edition's outbox while the workers send it."""

    def __init__(self, database: Database, number: int) -> None:
        self.database = database
        self.number = number
        self._seen_held: set[int] = set()
        self.last_seen_held: dict[int, datetime] = {}

    def counts(self) -> StateCounts:
        with self.database.session() as session:
            return state_counts(session, self.number)

    def held_by(self, pid: int) -> dict[int, datetime]:
        """The rows process `pid` holds (its claim token names its pid), with their lease."""
        with self.database.session() as session:
            rows = session.execute(
                select(OutboxRow.id, OutboxRow.lease_until).where(
                    OutboxRow.edition_id == self.number,
                    OutboxRow.state == "sending",
                    OutboxRow.claim.like(f"%:{pid}:%"),
                )
            )
            return {row_id: lease for row_id, lease in rows if lease is not None}

    def mid_send(self, pid: int) -> bool:
        """Whether `pid` has sent rows it held and still holds others (then in
        `last_seen_held`)."""
        assert self.counts().open, f"the edition went out before worker {pid} was seen sending"
        held = self.held_by(pid)
        with self.database.session() as session:
            # Only the holder records a row it holds: these went out from `pid` itself.
            sent = session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.id.in_(self._seen_held), OutboxRow.state == "sent")
            )
        self._seen_held |= held.keys()
        self.last_seen_held = held
        return bool(held) and bool(sent)

    def finished(self) -> bool:
        with self.database.session() as session:
            return get_edition(session, self.number).state == "sent"


def sent_by_worker(log: str, number: str) -> int:
    """What one worker says it sent of edition `number`, over all its passes."""
    found = re.findall(rf"^edition {number}: .*; this worker: (\d+) sent", log, re.MULTILINE)
    return sum(int(count) for count in found)


def test_four_workers_share_an_edition_and_survive_a_killed_one(
    tmp_path: Path, database_url: str, sink: DumpingSink
) -> None:
    recipients = RECIPIENTS
    config = write_config(
        tmp_path / "workers.toml",
        database_url,
        sink.port,
        smtp=f"max_connections = {CONNECTIONS}\n",
        # One article: a smaller message is less for the sink to write and this test to
        # read, and the size has no bearing on who gets what.
        feed="max_articles = 1\n",
    )
    number = draft(config)
    database = open_db(config)
    outbox = Outbox(database, int(number))
    logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
    workers = [worker_process(config, log, "--poll-seconds", "0.2") for log in logs]
    try:
        public_ids = add_confirmed(database, recipients)
        # All four look for work before there is any, so they start on it together
        # however long each took to start.
        wait_until(
            lambda: all("worker started" in log.read_text() for log in logs),
            what="all four workers to start",
        )
        queued = run(config, "send", number, "--workers", "--yes")
        assert queued.exit_code == 0, queued.output
        started = time.monotonic()

        # The first worker dies without a chance to clean up, caught mid-send.
        killed = workers[0]
        wait_until(lambda: outbox.mid_send(killed.pid), what="the first worker mid-send")
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        # Rows claimed since, or renewed, have a later lease.
        lease_ends = min(outbox.last_seen_held.values())
        killed_at = outbox.counts().sent
        # The others see that its process is gone and take its rows over when they next
        # look (at once, not when its lease runs out), and finish the edition.
        wait_until(
            lambda: not outbox.held_by(killed.pid), what="the killed worker's rows to be taken"
        )
        taken_at = utc_now()
        wait_until(outbox.finished, what="the survivors to finish the edition")
        elapsed = time.monotonic() - started
        for process, log in zip(workers[1:], logs[1:], strict=True):
            process.send_signal(signal.SIGTERM)
            assert exit_code(process, what="a worker after SIGTERM") == 0, log.read_text()
        counts = outbox.counts()
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
        database.dispose()

    # Handed over because its process is gone: the lease had not run out.
    assert taken_at < lease_ends
    assert (counts.sent, counts.open) == (recipients, 0)
    delivered = list(sink.messages())
    received = Counter(recipient for recipient, _ in delivered)
    missing = [address for address in public_ids if received[address] == 0]
    assert not missing, f"never delivered: {missing[:5]}"
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= CONNECTIONS, f"{duplicates} duplicates after one kill"
    wrong = [
        (address, identifier)
        for address, identifier in delivered
        if identifier
        != message_id(
            SECRET, edition=int(number), public_id=public_ids[address], domain="rvjeugdzorg.nl"
        )
    ]
    assert not wrong, wrong[:5]
    # Every survivor sent its share (the others share the work, not wait).
    handled = [log.read_text() for log in logs[1:]]
    assert all(sent_by_worker(text, number) > 0 for text in handled), handled
    size = sink.dump.stat().st_size / len(delivered) / 1024
    print(
        f"four workers: {recipients:,} recipients ({size:.1f} KiB) in {elapsed:.1f} s "
        f"({recipients / elapsed:,.0f}/s), killed at {killed_at:,}, {duplicates} duplicates"
    )
