"""`newsletter send` and `newsletter edition status`, driven as a script or a person would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.core.clock import utc_now
from tests.support.paths import SEEDS_FEED
from tests.support.smtpserver import TestSmtpServer


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
        '[sender]\nfrom = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"\n',
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["--config", str(config), *args],
        env={"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef"},
        catch_exceptions=False,
    )


@pytest.fixture
def edition(config: Path) -> str:
    assert run(config, "fetch").exit_code == 0
    drafted = json.loads(run(config, "draft", "--json").stdout)
    for i in range(3):
        added = run(
            config,
            "subscribers",
            "add",
            f"lezer{i}@example.org",
            "--confirmed",
            "--consent-note",
            "signed up on paper",
        )
        assert added.exit_code == 0, added.output
    return str(drafted["number"])


def test_send_with_yes_sends_and_summarizes(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    result = run(config, "send", edition, "--yes")
    assert result.exit_code == 0, result.output
    assert (
        f"edition {edition}: 3 sent, 0 failed permanently, 0 waiting for retry, 0 skipped"
        in result.stdout
    )
    assert len(smtp_server.received) == 3
    status = json.loads(run(config, "edition", "status", edition, "--json").stdout)
    assert status["state"] == "sent"
    assert status["counts"]["sent"] == 3 and status["problems"] == []


def test_without_a_terminal_send_needs_yes(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    result = run(config, "send", edition)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: not on a terminal: pass --yes to send without asking"
    assert smtp_server.received == []


def test_exit_codes_say_what_did_not_go_out(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    smtp_server.faults.rcpt["lezer1@example.org"] = "451 4.7.1 greylisted, try later"
    waiting = run(config, "send", edition, "--yes")
    assert waiting.exit_code == 75
    assert "1 waiting for retry" in waiting.stdout
    status = json.loads(run(config, "edition", "status", edition, "--json").stdout)
    [problem] = status["problems"]
    assert problem["email"] == "lezer1@example.org"
    assert problem["last_reply"] == "451 4.7.1 greylisted, try later"
    assert problem["next_attempt_at"]


def test_permanent_failures_exit_1(config: Path, edition: str, smtp_server: TestSmtpServer) -> None:
    smtp_server.faults.rcpt["lezer2@example.org"] = "550 5.1.1 unknown user"
    result = run(config, "send", edition, "--yes")
    assert result.exit_code == 1
    assert "1 failed permanently" in result.stdout
    assert "failed: lezer2@example.org: 550 5.1.1 unknown user" in result.stderr


def test_test_copies_go_to_each_address_given(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    result = run(config, "send", edition, "--test-to", "a@rvjeugdzorg.nl", "b@rvjeugdzorg.nl")
    assert result.exit_code == 0, result.output
    assert sorted(smtp_server.delivered_to()) == ["a@rvjeugdzorg.nl", "b@rvjeugdzorg.nl"]
    assert all(m["Subject"].startswith("[TEST] ") for m in smtp_server.messages())
    status = json.loads(run(config, "edition", "status", edition, "--json").stdout)
    assert status["state"] == "draft" and status["counts"]["total"] == 0


@pytest.mark.parametrize(
    "addresses",
    [["nota"], ["a@rvjeugdzorg.nl", "nota"], ["iemand@"], ["a@rvjeugdzorg.nl\nBcc: b@x.nl"]],
)
def test_test_copies_need_real_addresses(
    config: Path, edition: str, smtp_server: TestSmtpServer, addresses: list[str]
) -> None:
    result = run(config, "send", edition, "--test-to", *addresses)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --test-to: ") and "is not an e-mail address" in line
    assert smtp_server.received == []


def test_dry_run_writes_eml_files(config: Path, edition: str, tmp_path: Path) -> None:
    result = run(config, "send", edition, "--dry-run", str(tmp_path / "eml"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote 3 messages to {tmp_path / 'eml'}"
    assert len(list((tmp_path / "eml").glob("*.eml"))) == 3


def test_sending_an_unknown_edition_is_one_line(config: Path) -> None:
    result = run(config, "send", "42", "--yes")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no edition 42"


def test_send_waits_for_no_one_while_a_run_holds_the_lock(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    from newsletter.core.config import load_settings
    from newsletter.core.db import open_database
    from newsletter.jobs.locking import job_lock

    settings = load_settings(
        config, env={"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef"}
    )
    database = open_database(settings.database_url)
    try:
        with job_lock(database, clock=utc_now):
            result = run(config, "send", edition, "--yes")
    finally:
        database.dispose()
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "try again when it is done" in result.stderr
    assert smtp_server.received == []


def test_send_workers_hands_the_edition_over_and_sends_nothing(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    result = run(config, "send", edition, "--workers", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"edition {edition}: 3 queued for the workers (0 sent already, 0 skipped); "
        "run 'newsletter worker'"
    )
    assert smtp_server.received == []
    status = json.loads(run(config, "edition", "status", edition, "--json").stdout)
    assert status["state"] == "sending" and status["counts"]["pending"] == 3


def test_send_workers_takes_the_job_lock(
    config: Path, edition: str, smtp_server: TestSmtpServer
) -> None:
    from newsletter.core.config import load_settings
    from newsletter.core.db import open_database
    from newsletter.jobs.locking import job_lock

    settings = load_settings(
        config, env={"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef"}
    )
    database = open_database(settings.database_url)
    try:
        with job_lock(database, clock=utc_now):
            result = run(config, "send", edition, "--workers", "--yes")
    finally:
        database.dispose()
    assert result.exit_code == 1
    assert "try again when it is done" in result.stderr
    status = json.loads(run(config, "edition", "status", edition, "--json").stdout)
    assert status["state"] == "draft" and status["counts"]["total"] == 0


def test_send_workers_goes_with_neither_test_copies_nor_dry_runs(
    config: Path, edition: str, tmp_path: Path
) -> None:
    for extra in (["--test-to", "a@rvjeugdzorg.nl"], ["--dry-run", str(tmp_path / "eml")]):
        result = run(config, "send", edition, "--workers", *extra)
        assert result.exit_code == 1
        assert result.stderr.startswith("error: --workers sends for real")
    status = json.loads(run(config, "edition", "status", edition, "--json").stdout)
    assert status["state"] == "draft"


def test_send_workers_of_a_sent_edition_is_one_line(config: Path, edition: str) -> None:
    assert run(config, "send", edition, "--yes").exit_code == 0
    result = run(config, "send", edition, "--workers", "--yes")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: edition {edition} was sent already"
