"""`newsletter bounces [--json]`, driven as staff or cron would drive it."""

from __future__ import annotations

import json
import mailbox
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.cli.support import AppContext
from newsletter.core.config import IMAP_PASSWORD_ENV, load_settings
from newsletter.core.db import open_database
from subscribers.consent import Requester
from subscribers.management import ListManagement
from subscribers.models import Subscriber
from tests.support.clock import FixedClock
from tests.support.paths import ROOT
from tests.support.returns import (
    RETURN_PATH,
    SENDER,
    add_edition,
    many_parts_message,
    render,
)
from tests.support.subscribers import SECRET, status_of
from tests.support.waiting import PATIENCE_SECONDS

ENV = {"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_CONFIG": ""}


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[sender]\nfrom = "{SENDER}"\n'
        f'[delivery]\nreturn_path = "{RETURN_PATH}"\nverp = true\n'
        '[bounces]\nmaildir = "returns"\n',
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str, clock: FixedClock, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={**ENV, **(env or {})}).invoke(
        app,
        ["--config", str(config), "bounces", *args],
        obj=AppContext(config_path=config, clock=clock),
        catch_exceptions=False,
    )


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def returns(config: Path, clock: FixedClock) -> mailbox.Maildir:
    """The Maildir with a permanent failure, a delay report and a human reply in it."""
    settings = load_settings(config, env=ENV)
    database = open_database(settings.database_url)
    try:
        ListManagement(settings, database, clock=clock).add(
            "anouk@example.org",
            name=None,
            themes=[],
            requester=Requester(source="cli"),
            confirmed=True,
            consent_note="signed up on paper",
        )
        with database.session() as session:
            [(subscriber_id, public_id)] = session.execute(
                select(Subscriber.id, Subscriber.public_id)
            ).all()
        edition = add_edition(database, clock, [subscriber_id])
    finally:
        database.dispose()
    box = mailbox.Maildir(config.parent / "returns", create=True)
    people = {"anouk": public_id}
    box.add(render("qmail.eml", people, edition=edition))
    box.add(render("human-reply.eml", {**people, "bram": public_id}, edition=edition))
    return box


def test_bounces_acts_and_prints_the_counts(
    config: Path, clock: FixedClock, returns: mailbox.Maildir
) -> None:
    result = run(config, clock=clock)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "read 2 returned mails: 1 bounced, 0 probed, 0 temporary, 1 not understood; "
        "1 address suppressed",
        "  not understood (1): not a bounce, complaint or unsubscribe request",
        f"  kept for a person to read: {Path('returns') / '.unknown'}",
    ]
    settings = load_settings(config, env=ENV)
    database = open_database(settings.database_url)
    try:
        assert status_of(database, "anouk@example.org") == "bounced"
    finally:
        database.dispose()
    # A second run finds nothing new: everything was filed.
    again = run(config, "--json", clock=clock)
    assert again.exit_code == 0
    assert json.loads(again.stdout)["messages"] == 0


def test_a_message_of_too_many_parts_is_kept_for_a_person_and_the_rest_is_read(
    config: Path, clock: FixedClock, returns: mailbox.Maildir
) -> None:
    # 70,000 parts in 9.5 MB once cost the bounce reader 48 s of CPU.
    returns.add(many_parts_message(40_000))
    result = run(config, clock=clock)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "read 3 returned mails: 1 bounced, 0 probed, 0 temporary, 2 not understood; "
        "1 address suppressed",
        "  not understood (1): not a bounce, complaint or unsubscribe request",
        "  not understood (1): more than 200 MIME parts: too many to be a bounce",
        f"  kept for a person to read: {Path('returns') / '.unknown'}",
    ]


def test_bounces_json(config: Path, clock: FixedClock, returns: mailbox.Maildir) -> None:
    result = run(config, "--json", clock=clock)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "messages": 2,
        "permanent": 1,
        "probed": 0,
        "temporary": 0,
        "complaints": 0,
        "unsubscribes": 0,
        "not_understood": 1,
        "already_handled": 0,
        "suppressed": 1,
        "probes_sent": 0,
        "probes_refused": 0,
        "probes_waiting": 0,
        "reasons": {"not a bounce, complaint or unsubscribe request": 1},
    }


def test_a_missing_maildir_is_one_line_and_exit_1(config: Path, clock: FixedClock) -> None:
    result = run(config, clock=clock)
    assert result.exit_code == 1
    expected = f"error: return mailbox not found: {config.parent / 'returns'} (bounces.maildir)"
    assert one_error_line(result) == expected


def test_no_return_mailbox_configured_is_exit_2(tmp_path: Path, clock: FixedClock) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "n.db"}"\n', encoding="utf-8")
    result = run(path, clock=clock)
    assert result.exit_code == 2
    assert "no return mailbox is set up" in one_error_line(result)


def test_bad_bounces_settings_are_exit_2(tmp_path: Path, clock: FixedClock) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text(
        '[bounces]\nmaildir = "returns"\nimap_host = "imap.example.org"\nimap_user = "b"\n',
        encoding="utf-8",
    )
    result = run(path, clock=clock)
    assert result.exit_code == 2
    assert one_error_line(result).endswith("bounces: set maildir or imap_host, not both")


def test_imap_without_a_password_and_an_unreachable_server(
    tmp_path: Path, clock: FixedClock
) -> None:
    from tests.support.smtpserver import free_port

    path = tmp_path / "newsletter.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "n.db"}"\n'
        f'[bounces]\nimap_host = "127.0.0.1"\nimap_port = {free_port()}\nimap_user = "b"\n'
        "imap_timeout_seconds = 2\n",
        encoding="utf-8",
    )
    no_password = run(path, clock=clock)
    assert no_password.exit_code == 2
    assert f"{IMAP_PASSWORD_ENV} is not set" in one_error_line(no_password)
    unreachable = run(path, clock=clock, env={IMAP_PASSWORD_ENV: "geheim"})
    assert unreachable.exit_code == 1
    assert one_error_line(unreachable).startswith("error: IMAP 127.0.0.1:")


def test_a_maildir_this_user_cannot_read_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # Postfix makes Maildirs 0700 for the mail user, shut to the newsletter's own user. As
    # root (CI) the command runs without the capabilities that let root read anything,
    # the Maildir owned by `mail`; as another user, the Maildir is simply shut to them.
    maildir = tmp_path / "returns"
    mailbox.Maildir(maildir, create=True).close()
    config = tmp_path / "newsletter.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "newsletter.db"}"\n'
        f'[bounces]\nmaildir = "{maildir}"\n',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "newsletter", "--config", str(config), "bounces"]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to drop root's right to read anything")
        shutil.chown(maildir, "mail")
        maildir.chmod(0o700)
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    else:
        maildir.chmod(0o000)
    try:
        result = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            timeout=PATIENCE_SECONDS,
            check=False,
        )
    finally:
        maildir.chmod(0o700)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot read the Maildir {maildir}: Permission denied"), line
