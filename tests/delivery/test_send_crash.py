"""Crash test: a send killed with SIGKILL at random points, restarted until it is done.

Every subscriber must receive at least one copy. Copies beyond the first are allowed
only for messages in flight at a kill: at most one per open connection per kill. Every
copy carries the Message-ID derived from edition and subscriber.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from newsletter.content.ingest import fetch_all
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.editions.drafting import draft_edition
from newsletter.mail.identities import message_id
from subscribers.models import Subscriber
from subscribers.tokens import new_public_id
from tests.support.clock import FixedClock
from tests.support.paths import SEEDS_FEED
from tests.support.smtpserver import TestSmtpServer
from tests.support.waiting import PATIENCE_SECONDS, exit_code, wait_until

RECIPIENTS = 2000
CONNECTIONS = 4
KILLS = 8


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


def add_confirmed(db: Database, clock: FixedClock, count: int) -> None:
    # Straight into the table: the opt-in flow has its own tests, this one is about sending.
    rows = [
        {
            "public_id": new_public_id(),
            "email": f"lezer{i}@example.org",
            "email_key": f"lezer{i}@example.org",
            "name": None,
            "status": "confirmed",
            "themes": [],
            "created_at": clock(),
            "updated_at": clock(),
            "confirmed_at": clock(),
        }
        for i in range(count)
    ]
    with db.session() as session:
        session.execute(insert(Subscriber), rows)


def still_running_at(
    process: subprocess.Popen[bytes], server: TestSmtpServer, count: int, *, seed: int
) -> bool:
    """Wait until `server` holds `count` messages or `process` has ended; whether it runs."""
    wait_until(
        lambda: process.poll() is not None or len(server.received) >= count,
        what=f"the send to reach message {count} or end (seed {seed})",
    )
    return process.poll() is None


def test_killed_sends_resume_without_loss(
    make_settings: Callable[..., Settings],
    smtp_server: TestSmtpServer,
    clock: FixedClock,
    tmp_path: Path,
    database_url: str,
) -> None:
    settings = make_settings(
        feed={"urls": [str(SEEDS_FEED)]},
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "max_connections": CONNECTIONS},
        sender={"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
    )
    from newsletter.core.db import open_database

    db = open_database(settings.database_url)
    fetch_all(settings, db, clock=clock)
    number = draft_edition(settings, db, clock=clock.later(minutes=1)).number
    assert number is not None
    add_confirmed(db, clock, RECIPIENTS)
    with db.session() as session:
        public_ids = dict(session.execute(select(Subscriber.email, Subscriber.public_id)).all())
    db.dispose()

    config = tmp_path / "crash.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nmax_connections = {CONNECTIONS}\n'
        f"timeout_seconds = {PATIENCE_SECONDS}\n"
        '[sender]\nfrom = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef"}
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 10_000))
    chance = random.Random(seed)
    kills = 0
    log = tmp_path / "send.log"
    for _run in range(KILLS + 1):
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "newsletter",
                    "--config",
                    str(config),
                    "send",
                    str(number),
                    "--yes",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            # Eight kills, each once a random number of messages more went out (counted,
            # not timed: mid-send however slow the machine), then a run that may finish.
            if kills < KILLS:
                more = chance.randint(1, RECIPIENTS // (2 * KILLS))
                target = len(smtp_server.received) + more
                if still_running_at(process, smtp_server, target, seed=seed):
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    kills += 1
                    continue
        assert exit_code(process, what=f"the send (seed {seed})") == 0, log.read_text()
        break
    else:
        pytest.fail(f"the send never finished (seed {seed})")

    received = Counter(smtp_server.delivered_to())
    missing = [address for address in public_ids if received[address] == 0]
    assert not missing, f"never delivered (seed {seed}): {missing[:5]}"
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= kills * CONNECTIONS, f"seed {seed}: {duplicates} dupes, {kills} kills"
    for message in smtp_server.messages():
        address = message["To"]
        expected = message_id(
            "test-secret-key-0123456789abcdef",
            edition=number,
            public_id=public_ids[address],
            domain="rvjeugdzorg.nl",
        )
        assert message["Message-ID"] == expected
    print(f"crash test: seed {seed}, {kills} kills, {duplicates} duplicates")
