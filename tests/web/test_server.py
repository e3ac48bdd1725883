"""`newsletter serve`: the real command, as a process, answering on its port."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from newsletter.core.clock import utc_now
from newsletter.core.config import Settings
from newsletter.core.db import Database, open_database
from newsletter.core.errors import ConfigError
from newsletter.mail.mailer import OutgoingMail
from newsletter.mail.queue import enqueue, queued_rows
from newsletter.web.app import create_app
from subscribers.models import ConsentEvent
from tests.support.smtpserver import free_port
from tests.support.waiting import PATIENCE_SECONDS, wait_until
from tests.support.webharness import csrf_token, links_in, running_site


def test_serve_answers_and_stops_cleanly_on_sigterm(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    config = tmp_path / "newsletter.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n[site]\nbase_url = "http://127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    env = {"NEWSLETTER_SECRET_KEY": "serve-test-secret-0123456789abcdef", "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def health() -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=PATIENCE_SECONDS)
        except httpx.TransportError:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            return None

    try:
        response = wait_until(health, what="serve to answer")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert "server" not in response.headers
        page = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=PATIENCE_SECONDS)
        assert page.status_code == 200
        assert "Meld je aan voor de nieuwsbrief" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=PATIENCE_SECONDS)
    # uvicorn shuts down first, then exits by the signal it got, as a process should.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert b"Application shutdown complete" in output
    # No access log: visitors' addresses and the tokens in their URLs are not written down.
    assert b"GET /subscribe" not in output


def test_serve_without_a_secret_key_stops_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/n.db"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(config), "serve"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: NEWSLETTER_SECRET_KEY is not set; it signs the links in every mail"
    )


def test_serve_with_a_short_secret_key_stops_with_how_to_make_one(tmp_path: Path) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/n.db"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(config), "serve"],
        env={"PATH": "/usr/bin:/bin", "NEWSLETTER_SECRET_KEY": "k3y"},
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: NEWSLETTER_SECRET_KEY is too short (3 bytes, at least 32); make one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
    assert not (tmp_path / "n.db").exists()


def refuse_mail(mail: OutgoingMail) -> None:
    raise AssertionError(f"no mail expected, got {mail!r}")


def test_the_web_app_refuses_a_short_key_given_in_code(database_url: str) -> None:
    settings = Settings(database={"url": database_url}, secret_key="k3y")
    database = open_database(settings.database_url)
    try:
        with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY is too short"):
            create_app(settings, database, clock=utc_now, send=refuse_mail)
    finally:
        database.dispose()


def test_the_answer_goes_out_before_the_mail(make_settings: Callable[..., Settings]) -> None:
    with running_site(make_settings) as site:
        # The SMTP server holds the mail until the answer is in; the person must not wait
        # for it, and how long the answer takes must not tell whether a mail was sent.
        hold = site.smtp.hold("ouder@example.org")
        response = httpx.post(
            f"{site.base_url}/api/subscribe",
            json={"email": "ouder@example.org"},
            timeout=PATIENCE_SECONDS,
        )
        assert response.status_code == 202
        assert site.smtp.received == []
        hold.release()
        message = site.wait_for_mail("ouder@example.org")
        assert message["To"] == "ouder@example.org"


def consent_events(database: Database, event: str) -> int:
    with database.session() as session:
        return len(
            session.scalars(select(ConsentEvent.id).where(ConsentEvent.event == event)).all()
        )


def test_a_sign_up_through_the_form_queues_its_mail_and_the_server_sends_and_logs_it(
    make_settings: Callable[..., Settings],
) -> None:
    with running_site(make_settings) as site:
        page = httpx.get(f"{site.base_url}/subscribe", timeout=PATIENCE_SECONDS)
        response = httpx.post(
            f"{site.base_url}/subscribe",
            data={"csrf_token": csrf_token(page.text), "email": "ouder@example.org"},
            cookies=page.cookies,
            timeout=PATIENCE_SECONDS,
        )
        assert response.status_code == 200
        message = site.wait_for_mail("ouder@example.org")
        assert message["Subject"] and "/confirm/" in " ".join(links_in(message))
        wait_until(
            lambda: consent_events(site.database, "confirmation_mail_sent") == 1,
            what="the mail's outcome in the consent log",
        )
        with site.database.session() as session:
            assert queued_rows(session) == []


def test_a_mail_left_queued_by_a_stopped_server_goes_out_when_serve_starts_again(
    make_settings: Callable[..., Settings],
) -> None:
    database = open_database(make_settings().database_url)
    with database.session() as session:  # as a server that stopped before sending left it
        enqueue(
            session,
            [OutgoingMail(to="ouder@example.org", subject="Bevestig", text="link", kind="notice")],
            now=utc_now(),
        )
    database.dispose()

    with running_site(make_settings) as site:
        message = site.wait_for_mail("ouder@example.org")
        assert message["Subject"] == "Bevestig"

        def emptied() -> bool:
            with site.database.session() as session:
                return queued_rows(session) == []

        wait_until(emptied, what="the queue to be emptied")


def test_a_sign_up_whose_mail_the_server_cannot_send_yet_keeps_it_queued(
    make_settings: Callable[..., Settings],
) -> None:
    with running_site(make_settings) as site:
        site.smtp.faults.data["ouder@example.org"].append("451 4.3.0 probeer later")
        response = httpx.post(
            f"{site.base_url}/api/subscribe",
            json={"email": "ouder@example.org"},
            timeout=PATIENCE_SECONDS,
        )
        assert response.status_code == 202

        def tried_once() -> list[dict[str, object]] | None:
            with site.database.session() as session:
                found = queued_rows(session)
            return found if found and found[0]["attempts"] == 1 else None

        [waiting] = wait_until(tried_once, what="the first try of the mail")
        assert waiting["recipient"] == "ouder@example.org" and "451" in str(waiting["last_error"])
        assert consent_events(site.database, "confirmation_mail_sent") == 0
        assert consent_events(site.database, "confirmation_mail_failed") == 0
