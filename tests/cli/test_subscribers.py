"""`newsletter subscribers ...` driven as staff would drive it, with a real SMTP server."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from newsletter.cli.support import AppContext
from tests.support.clock import FixedClock
from tests.support.smtpserver import TestSmtpServer
from tests.support.subscribers import SECRET

Run = Callable[..., Result]
ENV = {"NEWSLETTER_SECRET_KEY": SECRET, "NEWSLETTER_CONFIG": ""}


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
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\n'
        '[sender]\nfrom = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli(config: Path, clock: FixedClock) -> Run:
    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner(env=ENV).invoke(
            app,
            ["--config", str(config), "subscribers", *args],
            input=input,
            obj=AppContext(config_path=config, clock=clock),
            catch_exceptions=False,
        )

    return run


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def test_add_delivers_a_confirmation_mail(cli: Run, smtp_server: TestSmtpServer) -> None:
    result = cli("add", "Ouder@Example.org", "--name", "Sanne", "--themes", "doe-je-mee")
    assert result.exit_code == 0, result.output
    assert "Ouder@Example.org: pending until the address confirms" in result.stdout
    assert "confirmation mail sent to Ouder@example.org" in result.stdout
    [received] = smtp_server.received
    assert received.recipients == ["Ouder@example.org"]
    assert "/confirm/" in received.message().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    listed = cli("list", "--json")
    [row] = json.loads(listed.stdout)
    assert (row["email"], row["status"], row["name"], row["themes"]) == (
        "Ouder@example.org",
        "pending",
        "Sanne",
        ["doe-je-mee"],
    )


def test_add_confirmed_needs_a_note_and_then_sends_nothing(
    cli: Run, smtp_server: TestSmtpServer
) -> None:
    refused = cli("add", "ouder@example.org", "--confirmed")
    assert refused.exit_code == 1
    assert lines(refused.stderr) == ["error: invalid input (consent_note: required)"]
    added = cli("add", "ouder@example.org", "--confirmed", "--consent-note", "Formulier op papier")
    assert added.exit_code == 0, added.output
    assert "confirmed (consent note logged)" in added.stdout
    again = cli("add", "ouder@example.org")
    assert "already confirmed; nothing changed" in again.stdout
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "geen-adres"], "error: invalid input (email: invalid)"),
        (
            ["add", "x@example.org", "--name", "www.spam.example"],
            "error: invalid input (name: not_a_name)",
        ),
        (
            ["add", "x@example.org", "--themes", "onbekend"],
            "error: invalid input (themes: unknown)",
        ),
        (
            ["show", "niemand@example.org"],
            "error: niemand@example.org is not on the list and nothing is held on it",
        ),
        (["remove", "niemand@example.org"], "error: niemand@example.org is not on the list"),
        (
            ["erase", "niemand@example.org", "--yes"],
            "error: niemand@example.org is not on the list and nothing is held on it",
        ),
    ],
)
def test_errors_are_one_line_with_exit_code_1(cli: Run, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert lines(result.stderr) == [message]


def test_a_refused_mail_exits_1_and_the_subscriber_stays_pending(
    cli: Run, smtp_server: TestSmtpServer
) -> None:
    smtp_server.faults.rcpt["weg@example.org"] = "550 5.1.1 unknown user"
    result = cli("add", "weg@example.org")
    assert result.exit_code == 1
    assert "error: confirmation mail to weg@example.org failed:" in result.stderr
    assert "550 5.1.1" in result.stderr
    shown = json.loads(cli("show", "weg@example.org", "--json").stdout)
    assert shown["subscriber"]["status"] == "pending"
    assert [e["event"] for e in shown["consent_log"]] == [
        "subscribe_requested",
        "confirmation_mail_failed",
    ]


def test_import_reports_bad_lines_and_delivers_the_rest(
    cli: Run, tmp_path: Path, smtp_server: TestSmtpServer
) -> None:
    path = tmp_path / "leden.csv"
    path.write_text(
        "\ufeffemail,name,themes\r\n"
        "een@example.org,Een,doe-je-mee\r\n"
        "kapot,Twee,\r\n"
        "drie@example.org,,nee\r\n"
        "vier@example.org,Vier,\r\n",
        encoding="utf-8",
    )
    result = cli("import", str(path))
    assert result.exit_code == 1
    assert lines(result.stderr) == [
        "line 3: not a valid e-mail address",
        "line 4: unknown theme nee",
    ]
    assert (
        "4 rows: 0 confirmed, 2 pending (confirmation mail), 0 already confirmed, 2 not imported"
        in result.stdout
    )
    assert sorted(smtp_server.delivered_to()) == ["een@example.org", "vier@example.org"]


def test_import_confirmed_without_problems_exits_0(
    cli: Run, tmp_path: Path, smtp_server: TestSmtpServer
) -> None:
    path = tmp_path / "leden.csv"
    path.write_text("email\neen@example.org\ntwee@example.org\n", encoding="utf-8")
    result = cli("import", str(path), "--confirmed", "--consent-note", "Ledenlijst 2026")
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 confirmed" in result.stdout
    assert smtp_server.received == []


def test_import_reads_a_dutch_excel_file_in_windows_1252(
    cli: Run, tmp_path: Path, smtp_server: TestSmtpServer
) -> None:
    path = tmp_path / "leden.csv"
    path.write_bytes("E-mail;Naam\r\neen@example.org;Zoë Ærts\r\n".encode("cp1252"))
    result = cli("import", str(path), "--confirmed", "--consent-note", "Ledenlijst 2026")
    assert result.exit_code == 0, result.output
    assert "1 rows: 1 confirmed" in result.stdout
    shown = json.loads(cli("show", "een@example.org", "--json").stdout)
    assert shown["subscriber"]["name"] == "Zoë Ærts"


def test_import_of_a_missing_or_unreadable_file(cli: Run, tmp_path: Path) -> None:
    missing = cli("import", str(tmp_path / "weg.csv"))
    assert missing.exit_code == 1
    assert lines(missing.stderr) == [f"error: file not found: {tmp_path / 'weg.csv'}"]
    binary = tmp_path / "plaatje.csv"
    binary.write_bytes(b"\xff\xfe\x00email")
    result = cli("import", str(binary))
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert len(lines(result.stderr)) == 1


def test_export_to_stdout_and_to_a_file(cli: Run, tmp_path: Path) -> None:
    cli("add", "een@example.org", "--confirmed", "--consent-note", "x", "--name", "Een, de eerste")
    cli("add", "twee@example.org")
    result = cli("export", "--status", "confirmed")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["email"], row["name"], row["status"]) for row in rows] == [
        ("een@example.org", "Een, de eerste", "confirmed")
    ]
    target = tmp_path / "lijst.csv"
    written = cli("export", "--out", str(target))
    assert written.exit_code == 0
    assert "2 subscribers written to" in written.stdout
    with target.open(encoding="utf-8", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2


def test_a_wrong_status_is_a_usage_error(cli: Run) -> None:
    result = cli("list", "--status", "weg")
    assert result.exit_code == 2


def test_list_and_show_for_people(cli: Run) -> None:
    assert "no subscribers" in cli("list").stdout
    cli("add", "ouder@example.org", "--name", "Sanne", "--confirmed", "--consent-note", "Belde ons")
    listed = cli("list")
    assert "ouder@example.org" in listed.stdout and "Sanne" in listed.stdout
    shown = cli("show", "ouder@example.org")
    assert shown.exit_code == 0
    assert "status: confirmed" in shown.stdout
    assert "added_by_staff source=cli" in shown.stdout
    assert "Belde ons" in shown.stdout


def test_remove_and_erase(cli: Run, smtp_server: TestSmtpServer) -> None:
    cli("add", "ouder@example.org", "--name", "Sanne", "--confirmed", "--consent-note", "x")
    removed = cli("remove", "ouder@example.org")
    assert removed.exit_code == 0 and "unsubscribed" in removed.stdout
    refused = cli("add", "ouder@example.org", "--confirmed", "--consent-note", "x")
    assert refused.exit_code == 1
    assert "is suppressed (unsubscribed)" in refused.stderr

    kept = cli("erase", "ouder@example.org", input="n\n")
    assert kept.exit_code == 1
    assert "Erase everything held on ouder@example.org?" in kept.stderr
    assert json.loads(cli("show", "ouder@example.org", "--json").stdout)["subscriber"] is not None

    erased = cli("erase", "ouder@example.org", input="y\n")
    assert erased.exit_code == 0, erased.output
    person = json.loads(cli("show", "ouder@example.org", "--json").stdout)
    assert person["subscriber"] is None and person["suppression"]["reason"] == "erased"
    assert cli("erase", "ouder@example.org", "--yes").exit_code == 0  # idempotent


def test_purge_prints_counts(cli: Run, clock: FixedClock) -> None:
    cli("add", "oud@example.org")
    clock.advance(days=8)
    result = cli("purge")
    assert result.exit_code == 0
    assert lines(result.stdout) == ["purged 1 unconfirmed subscriber(s) and 0 expired token(s)"]
