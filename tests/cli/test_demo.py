"""`newsletter demo`, run as a new user runs it, checked for what they would look at.

One run (a subprocess, module-wide) is inspected from every side: its output, the
preview, the .eml files in its mailbox, its database and its ports. So is one run of
`newsletter demo --schedule`, where the real scheduler does the fetch, draft and send.
The mail sink the demo ships (newsletter/mailsink.py) gets tests of its own at the end.
"""

from __future__ import annotations

import io
import os
import re
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from typer.testing import CliRunner

from newsletter.cli import demo as demo_module
from newsletter.cli import demo_schedule
from newsletter.cli.app import app
from newsletter.cli.demo import run_demo
from newsletter.core.config import SECRET_KEY_ENV
from newsletter.core.errors import DeliveryError
from newsletter.mail.mailsink import MailSink
from tests.support.waiting import PATIENCE_SECONDS

ANOUK, YOUSSEF, CARE_WORKER = "anouk@example.org", "youssef@example.org", "m.bakker@example.org"
SAMPLE_ADDRESSES = (ANOUK, YOUSSEF, CARE_WORKER)
# The sample feed's articles, and whether each has the category "Doe je mee?".
TITLES = {
    "Wat als we het fundamenteel anders doen? Jeugdzorg uit de knel": True,
    "In gesprek met jeugdzorgorganisaties en op weg naar een gedeelde visie": False,
    "Nieuw onderzoek jeugdbescherming vraagt om actie, doe mee!": True,
    "Eerste opbrengsten verkenning Radicale vernieuwing jeugdzorg": False,
    "Doe jij mee met Radicale vernieuwing jeugdzorg?": True,
}


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    returncode: int
    stdout: str
    stderr: str

    def port(self, label: str) -> int:
        found = re.search(rf"^{label}: \w+://127\.0\.0\.1:(\d+)$", self.stdout, re.MULTILINE)
        assert found, f"no {label!r} line in the output"
        return int(found.group(1))

    def mails(self) -> dict[str, EmailMessage]:
        """Every .eml file in the mailbox by name, parsed."""
        return {
            path.name: parsed(path.read_bytes())
            for path in sorted((self.folder / "mailbox").glob("*.eml"))
        }


def parsed(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def recipient(message: EmailMessage) -> str:
    return parseaddr(str(message["To"]))[1]


def run_command(folder: Path, *options: str) -> DemoRun:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo", "--dir", str(folder), *options],
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
        check=False,
    )
    return DemoRun(folder, result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_command(tmp_path_factory.mktemp("demo") / "demo")


@pytest.fixture(scope="module")
def newsletters(demo: DemoRun) -> dict[str, EmailMessage]:
    """The edition as each sample subscriber got it, by address."""
    found = [m for m in demo.mails().values() if m["List-Unsubscribe"]]
    by_address = {recipient(message): message for message in found}
    assert len(by_address) == len(found), "someone got the edition twice"
    return by_address


def test_the_demo_succeeds_and_says_what_it_did(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""  # no server logs or warnings in between
    assert "edition 1: 3 sent, 0 failed permanently, 0 waiting for retry, 0 skipped" in demo.stdout
    for address in SAMPLE_ADDRESSES:
        assert address in demo.stdout
    assert f"mailbox: {demo.folder.resolve() / 'mailbox'} (9 messages)" in demo.stdout


def test_the_preview_holds_the_seed_articles(demo: DemoRun) -> None:
    html_path = re.search(r"HTML: (\S+)", demo.stdout)
    assert html_path
    html = Path(html_path.group(1)).read_text(encoding="utf-8")
    for title in TITLES:
        assert title in html


def test_each_sample_person_got_one_confirmation_mail(demo: DemoRun) -> None:
    confirmations = [
        m for m in demo.mails().values() if not m["List-Unsubscribe"] and "/confirm/" in text_of(m)
    ]
    assert sorted(recipient(m) for m in confirmations) == sorted(SAMPLE_ADDRESSES)
    web_port = demo.port("web app")
    for message in confirmations:
        # A name typed into a form never reaches a mail to an unconfirmed address.
        assert message["To"] == recipient(message)
        assert re.search(rf"http://127\.0\.0\.1:{web_port}/confirm/\S+", text_of(message))


def test_each_sample_person_was_welcomed_after_confirming(demo: DemoRun) -> None:
    welcomes = [m for m in demo.mails().values() if str(m["Subject"]).startswith("Welkom")]
    assert sorted(recipient(m) for m in welcomes) == sorted(SAMPLE_ADDRESSES)
    assert "Hallo Anouk de Vries," in text_of(next(m for m in welcomes if recipient(m) == ANOUK))


def test_each_subscriber_got_the_edition_with_one_click_unsubscribe(
    newsletters: dict[str, EmailMessage], demo: DemoRun
) -> None:
    assert sorted(newsletters) == sorted(SAMPLE_ADDRESSES)
    for message in newsletters.values():
        assert message["List-Unsubscribe"].startswith(
            f"<http://127.0.0.1:{demo.port('web app')}/unsubscribe/"
        )
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert newsletters[ANOUK]["To"] == "Anouk de Vries <anouk@example.org>"
    assert newsletters[CARE_WORKER]["To"] == CARE_WORKER  # signed up without a name


def test_the_themes_a_subscriber_chose_decide_their_articles(
    newsletters: dict[str, EmailMessage],
) -> None:
    doe_je_mee = text_of(newsletters[ANOUK])
    everything = text_of(newsletters[YOUSSEF])
    care_worker = text_of(newsletters[CARE_WORKER])
    for title, in_doe_je_mee in TITLES.items():
        assert (title in doe_je_mee) == in_doe_je_mee, title
        assert title in everything
    # Opstarten beweging and Mensen en initiatieven: not the Kampvuurgesprekken article.
    assert "Wat als we het fundamenteel anders doen?" not in care_worker
    assert "Eerste opbrengsten verkenning Radicale vernieuwing jeugdzorg" in care_worker


def test_the_database_holds_three_confirmed_subscribers_with_their_consent(
    demo: DemoRun,
) -> None:
    with closing(sqlite3.connect(demo.folder / "newsletter.db")) as db:
        people = {
            email: (status, confirmed_at)
            for email, status, confirmed_at in db.execute(
                "SELECT email, status, confirmed_at FROM subscribers"
            )
        }
        events = db.execute(
            "SELECT s.email, e.event, e.source, e.consent_text_hash"
            " FROM consent_events e JOIN subscribers s ON s.id = e.subscriber_id"
            " ORDER BY e.id"
        ).fetchall()
        sent = db.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0]
    assert set(people) == set(SAMPLE_ADDRESSES)
    assert all(status == "confirmed" and at for status, at in people.values())
    channel = {ANOUK: "form", YOUSSEF: "form", CARE_WORKER: "api"}
    for address in SAMPLE_ADDRESSES:
        log = [
            (event, source, bool(text)) for email, event, source, text in events if email == address
        ]
        assert log == [
            ("subscribe_requested", channel[address], True),
            ("confirmation_mail_sent", "system", False),
            ("confirmed", "web", True),
            ("welcome_mail_sent", "system", False),
        ]
    assert sent == 3


def test_nothing_is_left_listening_on_the_demo_ports(demo: DemoRun) -> None:
    for label in ("mail sink", "web app"):
        with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
            probe.settimeout(2)
            probe.connect(("127.0.0.1", demo.port(label)))


def test_a_folder_with_a_demo_in_it_is_refused_and_left_alone(demo: DemoRun) -> None:
    def contents() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in demo.folder.rglob("*") if p.is_file()}

    before = contents()
    again = run_command(demo.folder)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: {demo.folder / 'newsletter.toml'} exists already; give --dir a new or empty folder"
    )
    assert contents() == before


def test_the_demo_leaves_no_thread_running_in_its_process(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    run_demo(tmp_path / "demo", out=Console(file=io.StringIO()))
    assert set(threading.enumerate()) == before


# -- newsletter demo --schedule ------------------------------------------------------


@pytest.fixture(scope="module")
def scheduled_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_command(tmp_path_factory.mktemp("demo") / "scheduled", "--schedule")


def test_the_scheduled_demo_says_when_the_run_is_due_and_what_it_did(
    scheduled_demo: DemoRun,
) -> None:
    assert scheduled_demo.returncode == 0, scheduled_demo.stderr
    assert scheduled_demo.stderr == ""
    lines = scheduled_demo.stdout.splitlines()
    assert (
        "scheduler started, as `newsletter schedule` runs it (times in Europe/Amsterdam):" in lines
    )
    assert re.search(
        r'^  then on \[schedule\] cron "0 9 \* \* tue": \d{4}-\d\d-\d\d 09:00:00 CES?T$',
        scheduled_demo.stdout,
        re.MULTILINE,
    )
    assert "  run 1: fetched 1 feed (5 new), drafted edition 1, sent 3" in lines
    assert "stopped the scheduler" in lines
    mailbox = scheduled_demo.folder.resolve() / "mailbox"
    assert f"mailbox: {mailbox} (9 messages)" in lines
    assert "  0002-welcome-anouk.eml" in lines
    assert "  0007-newsletter-anouk.eml" in lines


def test_the_scheduler_ran_the_job_when_it_said_it_would(scheduled_demo: DemoRun) -> None:
    found = re.search(
        r"^  next run at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) CES?T: once, for the demo$",
        scheduled_demo.stdout,
        re.MULTILINE,
    )
    assert found, scheduled_demo.stdout
    due = datetime.fromisoformat(found.group(1)).replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
    with closing(sqlite3.connect(scheduled_demo.folder / "newsletter.db")) as db:
        runs = db.execute("SELECT trigger, outcome, started_at FROM runs").fetchall()
        editions = db.execute("SELECT id, state FROM editions").fetchall()
        stored_jobs = db.execute("SELECT id FROM scheduler_jobs").fetchall()
    [(trigger, outcome, started_at)] = runs
    assert (trigger, outcome) == ("schedule", "ok")
    started = datetime.fromisoformat(started_at).replace(tzinfo=ZoneInfo("UTC"))
    # Not before it was due; how much later depends on the machine, up to the demo's cap.
    assert due <= started < due + timedelta(seconds=demo_schedule.RUN_TIMEOUT_SECONDS)
    assert editions == [(1, "sent")]  # drafted and sent by the run itself (auto_send)
    assert stored_jobs == [("newsletter-run",)]  # the weekly job, kept in the database


def test_the_scheduled_run_sent_each_subscriber_the_edition(scheduled_demo: DemoRun) -> None:
    editions = [m for m in scheduled_demo.mails().values() if m["List-Unsubscribe"]]
    assert sorted(recipient(message) for message in editions) == sorted(SAMPLE_ADDRESSES)
    assert (
        "3 mails with the edition arrived in the mail sink, one for each of the 3 subscribers"
        in scheduled_demo.stdout
    )
    for label in ("mail sink", "web app"):
        with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
            probe.settimeout(2)
            probe.connect(("127.0.0.1", scheduled_demo.port(label)))


def test_a_failing_scheduled_run_ends_the_demo_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_module, "SAMPLE_FEED", tmp_path / "no-such-feed.xml")
    monkeypatch.setattr(demo_schedule, "RUN_DELAY_SECONDS", 1)
    monkeypatch.delenv(SECRET_KEY_ENV, raising=False)
    threads = set(threading.enumerate())
    result = CliRunner().invoke(app, ["demo", "--schedule", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: the scheduled run did not send the edition: run 1: ")
    assert "fetch: " in line and "no-such-feed.xml" in line
    # The scheduler, its job's thread, the web app and the sink are gone, and so is the
    # key the demo lent the job through the environment.
    assert set(threading.enumerate()) == threads
    assert SECRET_KEY_ENV not in os.environ


# -- the mail sink -------------------------------------------------------------------


def test_the_mail_sink_files_every_message_and_stops_listening(tmp_path: Path) -> None:
    with MailSink(tmp_path / "mailbox") as sink:
        port = sink.port
        with smtplib.SMTP("127.0.0.1", port, timeout=PATIENCE_SECONDS) as client:
            for name in ("ouder", "jongere"):
                client.sendmail(
                    "staff@example.org",
                    [f"{name}@example.org"],
                    f"To: {name}@example.org\r\nSubject: hallo\r\n\r\nDag {name}\r\n",
                )
        arrived = sink.wait_for(
            lambda mail: "jongere@example.org" in mail.recipients, timeout=PATIENCE_SECONDS
        )
        assert arrived is not None and arrived.number == 2
        assert sink.wait_for(lambda mail: False, timeout=0.1) is None
    assert [mail.path.name for mail in sink.mails()] == ["0001-ouder.eml", "0002-jongere.eml"]
    first = parsed((tmp_path / "mailbox" / "0001-ouder.eml").read_bytes())
    assert first["Subject"] == "hallo" and text_of(first).strip() == "Dag ouder"
    with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
        probe.connect(("127.0.0.1", port))


def test_a_mail_sink_that_cannot_listen_says_so(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(DeliveryError, match=f"cannot listen on 127.0.0.1:{port}"):
            MailSink(tmp_path / "mailbox", port=port).start()
