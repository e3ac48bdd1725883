"""Send workers: `newsletter send N --workers`, `newsletter worker`, and several at once.

The big test runs four worker processes on one edition of 20,000 recipients against
Postfix's smtp-sink, which dumps every message it accepted (and only those: a
transaction cut off before its final dot is thrown away), and kills one worker midway.
Every recipient must get a copy; copies beyond the first only for what the killed worker
had in flight (one per open connection); every copy with its own Message-ID.
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
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.core.clock import utc_now
from newsletter.core.config import load_settings
from newsletter.core.db import Database, open_database
from newsletter.core.processes import HOST_CHARS
from newsletter.delivery.outbox import OutboxRow, state_counts
from newsletter.editions.lifecycle import get_edition
from newsletter.mail.identities import message_id
from subscribers.models import Subscriber
from subscribers.tokens import new_public_id
from tests.support.paths import SEEDS_FEED
from tests.support.smtpserver import TestSmtpServer, free_port

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
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\n{smtp}'
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
    # Paced, so that the worker is surely mid-send when it is told to stop.
    paced = write_config(
        tmp_path / "paced.toml", database_url, smtp_server.port, smtp="rate_per_second = 400\n"
    )
    number = draft(paced)
    database = open_db(paced)
    try:
        add_confirmed(database, 1500)
        assert run(paced, "send", number, "--workers", "--yes").exit_code == 0
        log = tmp_path / "worker.log"
        process = worker_process(paced, log, "--poll-seconds", "0.2")
        deadline = time.monotonic() + 30
        while len(smtp_server.received) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
        assert "SIGTERM: stopping after the current batch" in log.read_text()
        with database.session() as session:
            stopped = state_counts(session, int(number))
            held = session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.state == "sending", OutboxRow.lease_until > utc_now())
            )
        # It finished the messages it had begun, gave back the rest and holds nothing.
        assert held == 0 and 0 < stopped.sent < 1500 and stopped.open == 1500 - stopped.sent
        assert stopped.sent == len(smtp_server.received)
    finally:
        database.dispose()
    unpaced = write_config(tmp_path / "unpaced.toml", database_url, smtp_server.port)
    assert run(unpaced, "worker", "--once").exit_code == 0
    received = Counter(smtp_server.delivered_to())
    assert len(received) == 1500 and set(received.values()) == {1}


# -- four workers, one killed -------------------------------------------------------

RECIPIENTS = 20_000
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
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("smtp-sink did not start")

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


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


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
    try:
        public_ids = add_confirmed(database, recipients)
        queued = run(config, "send", number, "--workers", "--yes")
        assert queued.exit_code == 0, queued.output
        started = time.monotonic()
        logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
        workers = [worker_process(config, log, "--poll-seconds", "0.2") for log in logs]

        def sent() -> int:
            with database.session() as session:
                return state_counts(session, int(number)).sent

        def finished() -> bool:
            with database.session() as session:
                return get_edition(session, int(number)).state == "sent"

        # Midway, the first worker dies without a chance to clean up.
        wait_for(lambda: sent() >= recipients // 2, timeout=60, what="half the send")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed_at = sent()
        # Well before the dead worker's lease (2 minutes) runs out: the others see that
        # its process is gone and take its rows at once.
        wait_for(finished, timeout=60, what="the edition to be sent")
        elapsed = time.monotonic() - started
        for process, log in zip(workers[1:], logs[1:], strict=True):
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()
        with database.session() as session:
            counts = state_counts(session, int(number))
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
        database.dispose()

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
    # Every survivor took part after the kill (the others share the work, not wait).
    handled = [log.read_text() for log in logs[1:]]
    assert all(f"edition {number}:" in text for text in handled), handled
    size = sink.dump.stat().st_size / len(delivered) / 1024
    print(
        f"four workers: {recipients:,} recipients ({size:.1f} KiB) in {elapsed:.1f} s "
        f"({recipients / elapsed:,.0f}/s), killed at {killed_at:,}, {duplicates} duplicates"
    )
