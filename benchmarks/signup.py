"""Signing up under load: `newsletter serve` against wrk, the mails into Postfix's smtp-sink.

The real command runs as a process on a fresh SQLite database, mailing through [smtp] to
`smtp-sink` on loopback. Debian's `wrk` posts sign-ups with a new address each, at 1,
16 and 64 connections, to `POST /api/subscribe` (JSON) and `POST /subscribe` (the form),
and for comparison asks `GET /subscribe` and `/healthz`. It prints requests per second
and the 50th and 99th percentile latency of each, and then checks that nothing was lost:
every accepted sign-up has its `subscribe_requested` event, its confirmation token and
its `confirmation_mail_sent` event, and smtp-sink counted as many messages (its `-c`
counters, read from its output when it stops).

How the load gets past the app's defences, as a real crowd would:
- the sign-up limit per client (`[web] signup_limit_per_ip`): the server trusts loopback
  as its reverse proxy (`[web] trusted_proxies`) and each request names a client address
  of its own in `X-Forwarded-For`, as many people behind one proxy would;
- the form's CSRF check (a double-submit token): the benchmark opens the form once, as a
  browser does, and every POST carries that cookie and that token.

Needs Debian's wrk and postfix (`make bench` installs both).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.send import free_port, process_cpu_seconds

SECRET = "benchmark-secret-key-0123456789-abcdef"
CLIENTS = (1, 16, 64)
PATIENCE_SECONDS = 120.0

# Each wrk thread numbers its requests; `tag` keeps the addresses of runs apart.
LUA = """
local thread_number = 0
function setup(thread)
  thread:set("tid", thread_number)
  thread_number = thread_number + 1
end
local counter = 0
function init(args)
  wrk.method = "{method}"
  {headers}
end
function request()
  counter = counter + 1
  if {distinct} then
    wrk.headers["X-Forwarded-For"] = string.format(
      "10.%d.%d.%d", tid + {tag_octet}, math.floor(counter / 256) % 256, counter % 256)
    local email = string.format("lezer-{tag}-%d-%d@example.org", tid, counter)
    return wrk.format(nil, "{path}", nil, string.format({body}, email))
  end
  return wrk.format(nil, "{path}")
end
function done(summary, latency, requests)
  io.write(string.format("LATENCY %d %d\\n", latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str
    content_type: str | None = None
    body: str | None = None  # a Lua format string with one %s, the address

    @property
    def signs_up(self) -> bool:
        return self.body is not None


@dataclass(frozen=True)
class Result:
    target: str
    clients: int
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers, timeouts and socket errors
    cpu_ms: float  # the server process's CPU (user and system) per answered request


def lua_script(target: Target, tag: str, tag_octet: int, cookie: str | None) -> str:
    headers = []
    if target.content_type:
        headers.append(f'wrk.headers["Content-Type"] = "{target.content_type}"')
    if cookie:
        headers.append(f'wrk.headers["Cookie"] = "{cookie}"')
    body = target.body or "''"
    return (
        LUA.replace("{method}", target.method)
        .replace("{headers}", "\n  ".join(headers))
        .replace("{distinct}", "true" if target.signs_up else "false")
        .replace("{tag_octet}", str(tag_octet))
        .replace("{tag}", tag)
        .replace("{path}", target.path)
        .replace("{body}", body)
    )


def run_wrk(base_url: str, script: Path, clients: int, seconds: int) -> tuple[str, int]:
    threads = min(clients, 2)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        base_url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return done.stdout, threads


def parse_wrk(
    output: str, target: str, clients: int, cpu_seconds: float, served: int | None = None
) -> Result:
    """wrk's figures; the CPU is shared by `served` requests (default: wrk's count, which
    leaves out those still in flight when it stopped)."""
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50, p99 = (int(v) for v in re.search(r"LATENCY (\d+) (\d+)", output).groups())  # type: ignore[union-attr]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        errors += sum(int(v) for v in sockets.groups())
    cpu_ms = cpu_seconds * 1000 / max(served or requests, 1)
    return Result(target, clients, requests, rate, p50 / 1000, p99 / 1000, errors, cpu_ms)


def write_config(folder: Path, port: int, smtp_port: int) -> Path:
    config = folder / "newsletter.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{folder / "signup.db"}"\n'
        f'[site]\nbase_url = "http://127.0.0.1:{port}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        '[sender]\nfrom = "Nieuwsbrief <nieuwsbrief@example.org>"\n'
        '[web]\ntrusted_proxies = ["127.0.0.1/32"]\n',
        encoding="utf-8",
    )
    return config


def start_server(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET}
    command = [sys.executable, "-m", "newsletter", "--config", str(config)]
    subprocess.run([*command, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"newsletter serve stopped: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("newsletter serve did not answer")


def form_cookie_and_token(base_url: str) -> tuple[str, str]:
    """What a browser gets when it opens the form: the CSRF cookie and the hidden field."""
    page = httpx.get(f"{base_url}/subscribe", timeout=30)
    token = re.search(r'name="csrf_token" value="([A-Za-z0-9_-]+)"', page.text)
    assert token is not None, "no CSRF token in the form"
    return f"csrf={page.cookies['csrf']}", token.group(1)


def counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        events = dict(
            connection.execute(
                "SELECT event, count(*) FROM consent_events GROUP BY event"
            ).fetchall()
        )
        tokens = connection.execute("SELECT count(*) FROM confirmation_tokens").fetchone()[0]
    return {
        "requested": events.get("subscribe_requested", 0),
        "tokens": tokens,
        "mail_sent": events.get("confirmation_mail_sent", 0),
        "mail_failed": events.get("confirmation_mail_failed", 0),
    }


def wait_for_mails(database: Path) -> None:
    """Until every sign-up's mail went out (or failed), or the patience ran out."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        found = counts(database)
        if found["mail_sent"] + found["mail_failed"] >= found["requested"]:
            return
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=PATIENCE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sink_messages(sink: subprocess.Popen[bytes], log: Path) -> int:
    """Stop smtp-sink and read how many messages it took (its last `-c` counters)."""
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=PATIENCE_SECONDS)
    found = re.findall(rb"mesg=(\d+)", log.read_bytes())
    return int(found[-1]) if found else 0


def start_counting_sink(port: int, log: Path) -> subprocess.Popen[bytes]:
    """smtp-sink with `-c`: it writes its counters after every session (into a file: a
    pipe nobody reads would fill and stop it)."""
    command = [shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-c", f"127.0.0.1:{port}"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    sink = subprocess.Popen([*command, "1000"], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise RuntimeError("smtp-sink did not start")


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per run (default 10)")
    parser.add_argument(
        "--clients", default=",".join(map(str, CLIENTS)), help="connections (1,16,64)"
    )
    options = parser.parse_args(argv)
    clients = [int(n) for n in options.clients.split(",")]
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: `make bench` installs it (apt-get install wrk)")

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        smtp_port, port = free_port(), free_port()
        base_url = f"http://127.0.0.1:{port}"
        sink = start_counting_sink(smtp_port, folder / "sink.log")
        try:
            server = start_server(write_config(folder, port, smtp_port), port, folder / "serve.log")
        except BaseException:
            sink_messages(sink, folder / "sink.log")
            raise
        try:
            cookie, token = form_cookie_and_token(base_url)
            targets = [
                Target(
                    "POST /api/subscribe",
                    "POST",
                    "/api/subscribe",
                    "application/json",
                    """'{"email": "%s"}'""",
                ),
                Target(
                    "POST /subscribe",
                    "POST",
                    "/subscribe",
                    "application/x-www-form-urlencoded",
                    f"'csrf_token={token}&email=%s'",
                ),
                Target("GET /subscribe", "GET", "/subscribe"),
                Target("GET /healthz", "GET", "/healthz"),
            ]
            for number, target in enumerate(targets):
                for level in clients if target.signs_up else [16]:
                    tag = f"{number}x{level}"
                    script = folder / f"{tag}.lua"
                    octet = (number * 3 + clients.index(level) if level in clients else 0) * 2
                    script.write_text(
                        lua_script(
                            target, tag, octet, cookie if "subscribe" in target.path else None
                        )
                    )
                    database = folder / "signup.db"
                    cpu_before = process_cpu_seconds(server.pid)
                    requested_before = counts(database)["requested"]
                    output, _ = run_wrk(base_url, script, level, options.seconds)
                    served = None
                    if target.signs_up:
                        # What the server still does for them (their mails) counts too.
                        wait_for_mails(database)
                        served = counts(database)["requested"] - requested_before
                    cpu = process_cpu_seconds(server.pid) - cpu_before
                    result = parse_wrk(output, target.name, level, cpu, served)
                    results.append(result)
                    print(
                        f"{target.name:<20} {level:>3} clients: {result.rate:8.1f} req/s, "
                        f"p50 {result.p50_ms:7.1f} ms, p99 {result.p99_ms:7.1f} ms, "
                        f"{result.errors} errors, server CPU {result.cpu_ms:5.2f} ms a request",
                        flush=True,
                    )
            accepted = sum(r.requests - r.errors for r in results if "POST" in r.target)
            wait_for_mails(folder / "signup.db")
        finally:
            stop(server)
            received = sink_messages(sink, folder / "sink.log")
        found = counts(folder / "signup.db")
    print(
        f"sign-ups answered as accepted (wrk's count, less errors): {accepted}; "
        f"subscribe_requested events: {found['requested']}; tokens: {found['tokens']}; "
        f"confirmation_mail_sent: {found['mail_sent']} (failed: {found['mail_failed']}); "
        f"messages smtp-sink took: {received}"
    )
    lost = found["requested"] - min(found["tokens"], found["mail_sent"], received)
    print(f"lost: {lost}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
