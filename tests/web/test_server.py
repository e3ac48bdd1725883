"""`newsletter serve`: the real command, as a process, answering on its port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from newsletter.core.config import Settings
from tests.support.smtpserver import free_port
from tests.support.webharness import running_site


def test_serve_answers_and_stops_cleanly_on_sigterm(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    config = tmp_path / "newsletter.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n[site]\nbase_url = "http://127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    env = {"NEWSLETTER_SECRET_KEY": "serve-test-secret-0123456789", "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert "server" not in response.headers
        page = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=5)
        assert page.status_code == 200
        assert "Meld je aan voor de nieuwsbrief" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
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
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: NEWSLETTER_SECRET_KEY is not set; it signs the links in every mail"
    )


def test_the_answer_goes_out_before_the_mail(make_settings: Callable[..., Settings]) -> None:
    with running_site(make_settings) as site:
        # The SMTP server takes its time; the person must not wait for it, and how long
        # the answer takes must not tell whether a mail was sent at all.
        site.smtp.faults.stall_in_data["ouder@example.org"] = 3.0
        response = httpx.post(
            f"{site.base_url}/api/subscribe", json={"email": "ouder@example.org"}, timeout=10
        )
        assert response.status_code == 202
        assert site.smtp.received == []
        message = site.wait_for_mail("ouder@example.org")
        assert message["To"] == "ouder@example.org"
