"""`newsletter run` and `newsletter runs`, driven as a person or a cron job would.

`newsletter schedule` runs until stopped; tests/jobs/test_scheduler.py starts it as a process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.core.clock import utc_now
from newsletter.core.db import open_database
from newsletter.jobs.locking import job_lock
from newsletter.jobs.runs import INTERRUPTED, start_run
from tests.support.paths import SEEDS_FEED
from tests.support.smtpserver import TestSmtpServer
from tests.support.waiting import PATIENCE_SECONDS

STAFF = "redactie@rvjeugdzorg.nl"


@pytest.fixture
def smtp_server() -> Iterator[TestSmtpServer]:
    server = TestSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path: Path, database_url: str, smtp_server: TestSmtpServer) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[feed]\nurls = ["{SEEDS_FEED}"]\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\n'
        f"timeout_seconds = {PATIENCE_SECONDS}\n"
        '[sender]\nfrom = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"\n'
        f'[schedule]\nstaff = ["{STAFF}"]\n',
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str, secret: str = "test-secret-key-0123456789abcdef") -> Result:
    return CliRunner().invoke(
        app,
        ["--config", str(config), *args],
        env={"NEWSLETTER_SECRET_KEY": secret},
        catch_exceptions=False,
    )


def add_reader(config: Path) -> None:
    added = run(
        config, "subscribers", "add", "lezer@example.org", "--confirmed", "--consent-note", "paper"
    )
    assert added.exit_code == 0, added.output


def test_run_prints_one_summary_line(config: Path, smtp_server: TestSmtpServer) -> None:
    add_reader(config)
    first = run(config, "run")
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    [line] = first.stdout.splitlines()
    assert line.startswith("run 1: fetched 1 feed (")
    assert line.endswith(", drafted edition 1, test copy and review link to 1 staff")
    assert sorted(smtp_server.delivered_to()) == [STAFF, STAFF]
    # The draft is under review and nothing new came in.
    second = run(config, "run", "--send")
    assert second.exit_code == 0
    assert second.stdout.strip().endswith("(0 new), nothing new since draft 1")


def test_run_send_sends_the_new_draft(config: Path, smtp_server: TestSmtpServer) -> None:
    add_reader(config)
    result = run(config, "run", "--send")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("drafted edition 1, sent 1")
    assert smtp_server.delivered_to() == ["lezer@example.org"]


def test_a_failed_run_exits_1_with_one_line_and_no_traceback(
    config: Path, smtp_server: TestSmtpServer, tmp_path: Path
) -> None:
    text = config.read_text(encoding="utf-8").replace(
        f'urls = ["{SEEDS_FEED}"]', f'urls = ["{tmp_path / "weg.xml"}"]'
    )
    config.write_text(text, encoding="utf-8")
    result = run(config, "run")
    assert result.exit_code == 1
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    assert line.startswith("run 1: fetched 1 feed (0 new, 1 failed), nothing new, failed: fetch: ")
    # The staff heard about it, once.
    [report] = smtp_server.messages()
    assert report["Subject"] == "Nieuwsbrief: run 1 is mislukt"


def test_run_while_another_run_holds_the_lock_is_skipped(
    config: Path, database_url: str, smtp_server: TestSmtpServer
) -> None:
    assert run(config, "runs").exit_code == 0  # creates the schema
    database = open_database(database_url)
    try:
        with job_lock(database, clock=utc_now):
            result = run(config, "run")
    finally:
        database.dispose()
    assert result.exit_code == 0
    assert result.stdout.startswith("run 1: skipped, another run holds the lock")
    assert smtp_server.received == []


def test_runs_lists_newest_first(config: Path, smtp_server: TestSmtpServer) -> None:
    assert run(config, "runs").stdout.strip() == (
        "no runs yet; run 'newsletter run' or start the scheduler"
    )
    assert run(config, "run").exit_code == 0
    assert run(config, "run").exit_code == 0
    listed = json.loads(run(config, "runs", "--json").stdout)
    assert [item["id"] for item in listed] == [2, 1]
    assert [item["outcome"] for item in listed] == ["nothing_new", "ok"]
    assert listed[1]["trigger"] == "cli" and listed[1]["counts"]["edition"] == 1
    assert listed[1]["finished_at"] >= listed[1]["started_at"] and listed[1]["error"] is None
    table = run(config, "runs").stdout
    assert "nothing new since draft 1" in table and "drafted edition 1" in table
    assert table.index("nothing new since draft 1") < table.index("drafted edition 1")
    assert len(json.loads(run(config, "runs", "--json", "--limit", "1").stdout)) == 1


def test_runs_shows_an_interrupted_run_by_its_error(
    config: Path, database_url: str, smtp_server: TestSmtpServer
) -> None:
    assert run(config, "runs").exit_code == 0  # creates the schema
    database = open_database(database_url)
    try:
        with database.session() as session:
            start_run(session, trigger="schedule", now=utc_now())  # and then the power failed
    finally:
        database.dispose()
    assert run(config, "run").exit_code == 0
    lines = run(config, "runs").stdout.splitlines()
    assert lines[0].split() == ["#", "started", "(UTC)", "trigger", "outcome", "what", "happened"]
    assert lines[2].split()[3:] == ["schedule", "failed", *INTERRUPTED.split()]


def test_run_without_the_secret_key_stops_before_doing_anything(
    config: Path, smtp_server: TestSmtpServer
) -> None:
    result = run(config, "run", secret="")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: NEWSLETTER_SECRET_KEY is not set; it signs the links in every mail"
    )
    assert json.loads(run(config, "runs", "--json").stdout) == []


def test_run_with_a_short_secret_key_stops_with_how_to_make_one(config: Path) -> None:
    result = run(config, "run", secret="k3y")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: NEWSLETTER_SECRET_KEY is too short (3 bytes, at least 32); make one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
