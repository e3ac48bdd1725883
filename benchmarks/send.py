"""Send throughput and memory: the real engine against Postfix's smtp-sink.

In each round, on this machine's loopback, with the same sink and connection count:
1. the engine sends the demo edition to N synthetic subscribers (SQLite, real outbox);
2. Postfix's C tool `smtp-source -d` sends N messages of the same size;
3. a plain smtplib loop sends pre-built messages over one connection (a smaller N).
It prints the three rates and the ratios of each round and their medians (this machine's
speed moves from one minute to the next: compare ratios taken in one round), the CPU
each sender and smtp-sink itself spent per message (the sink's is the ceiling of any
sender here), and then the peak RSS of a separate process that sends to 100,000
subscribers (memory must stay flat in N).

Needs Debian's postfix package for smtp-sink and smtp-source (`make bench` installs it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import insert

from newsletter.core.clock import utc_now
from newsletter.core.config import Settings, settings_from_mapping
from newsletter.core.db import open_database
from newsletter.delivery.copies import dry_run
from newsletter.delivery.send import send_edition
from subscribers.models import Subscriber
from subscribers.tokens import new_public_id

SECRET = "benchmark-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_sink(port: int, counters: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """smtp-sink on 127.0.0.1:`port`; its running counters ("sess=… quit=… mesg=…", one
    update per message and per session, separated by carriage returns) go to `counters`."""
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    command = [sink, "-c", f"127.0.0.1:{port}", "1000"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    output = counters if counters is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("smtp-sink did not start")


def make_settings(folder: Path, port: int, connections: int) -> Settings:
    return settings_from_mapping(
        {
            "feed": {"urls": [str(folder / "feed.xml")]},
            "database": {"url": f"sqlite:///{folder / 'bench.db'}"},
            "smtp": {"host": "127.0.0.1", "port": port, "max_connections": connections},
            "sender": {"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
            "site": {"base_url": "https://nieuwsbrief.rvjeugdzorg.nl"},
        },
        base_dir=folder,
        env={"NEWSLETTER_SECRET_KEY": SECRET},
    )


def prepare(settings: Settings, recipients: int) -> int:
    # Only the parent drafts the edition: the process that measures the send's memory
    # then imports what a send needs, not the demo and the web app it brings along.
    from newsletter.cli.demo import SAMPLE_FEED, SAMPLE_INTRO
    from newsletter.content.ingest import fetch_all
    from newsletter.editions.drafting import draft_edition

    feed = Path(settings.feed.urls[0])
    if not feed.exists():  # make_settings names a copy in the work folder
        shutil.copy(SAMPLE_FEED, feed)
    database = open_database(settings.database_url)
    fetch_all(settings, database, clock=utc_now)
    result = draft_edition(
        settings,
        database,
        clock=utc_now,
        intro_markdown=SAMPLE_INTRO.read_text(encoding="utf-8"),
        force=True,
    )
    assert result.number is not None
    now = utc_now()
    with database.session() as session:
        for start in range(0, recipients, 5000):
            session.execute(
                insert(Subscriber),
                [
                    {
                        "public_id": new_public_id(),
                        "email": f"lezer{i}@example.org",
                        "email_key": f"lezer{i}@example.org",
                        "name": f"Lezer {i}",
                        "status": "confirmed",
                        "themes": [],
                        "created_at": now,
                        "updated_at": now,
                        "confirmed_at": now,
                    }
                    for i in range(start, min(start + 5000, recipients))
                ],
            )
    database.dispose()
    return result.number


def sample_message(settings: Settings, number: int, folder: Path) -> bytes:
    """One real message of the edition (for the size and the smtplib loop)."""
    database = open_database(settings.database_url)
    out = folder / "one"
    # A dry run of a one-subscriber copy would do; here: the first message of the edition.
    dry_run(settings, database, number, out, clock=utc_now)
    database.dispose()
    first = sorted(out.glob("*.eml"))[0]
    data = first.read_bytes()
    shutil.rmtree(out)
    return data


def engine_rate(settings: Settings, number: int, recipients: int) -> float:
    database = open_database(settings.database_url)
    started = time.perf_counter()
    summary = send_edition(settings, database, number, clock=utc_now)
    elapsed = time.perf_counter() - started
    database.dispose()
    assert summary.counts.sent == recipients, summary
    return recipients / elapsed


def smtp_source_rate(port: int, messages: int, size: int, sessions: int) -> float:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    started = time.perf_counter()
    subprocess.run(
        [
            source,
            "-c",
            "-d",
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "nieuwsbrief@rvjeugdzorg.nl",
            "-t",
            "lezer@example.org",
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return messages / (time.perf_counter() - started)


def smtplib_rate(port: int, message: bytes, messages: int) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for i in range(messages):
            client.sendmail("nieuwsbrief@rvjeugdzorg.nl", [f"lezer{i}@example.org"], message)
    return messages / (time.perf_counter() - started)


def process_cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user and system) of this process, or of process `pid` (from /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are the 14th and 15th fields; the 3rd is the first after ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    rate: float  # messages per second
    cpu_us: float  # the sender's CPU per message (-1: not measured)
    sink_cpu_us: float  # smtp-sink's CPU per message meanwhile


def measured(sink_pid: int, messages: int, run: Callable[[], float], own_cpu: bool) -> Measured:
    sink_before, own_before = process_cpu_seconds(sink_pid), process_cpu_seconds()
    rate = run()
    sink_cpu = process_cpu_seconds(sink_pid) - sink_before
    own = (process_cpu_seconds() - own_before) / messages * 1e6 if own_cpu else -1.0
    return Measured(rate, own, sink_cpu / messages * 1e6)


@dataclass(frozen=True)
class Round:
    engine: Measured
    source: Measured
    plain: Measured


def one_round(port: int, sink_pid: int, recipients: int, connections: int) -> tuple[Round, int]:
    """The three senders against the same sink; the message size."""
    with tempfile.TemporaryDirectory() as folder:
        settings = make_settings(Path(folder), port, connections)
        number = prepare(settings, recipients)
        message = sample_message(settings, number, Path(folder))
        engine = measured(
            sink_pid, recipients, lambda: engine_rate(settings, number, recipients), True
        )
    source = measured(
        sink_pid,
        recipients,
        lambda: smtp_source_rate(port, recipients, len(message), connections),
        False,
    )
    plain_count = min(recipients, 5000)
    plain = measured(sink_pid, plain_count, lambda: smtplib_rate(port, message, plain_count), True)
    return Round(engine, source, plain), len(message)


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux's VmHWM starts afresh at exec; ru_maxrss does not
    (it keeps the parent's peak from before the exec, which made the child report the
    parent's size)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_run(folder: Path, port: int, connections: int, number: int, recipients: int) -> None:
    """Child process: only the send (the database was filled by the parent); prints the
    peak RSS in MB, the RSS after imports and setup, and the rate."""
    settings = make_settings(folder, port, connections)
    before = peak_rss_mb()
    rate = engine_rate(settings, number, recipients)
    peak = peak_rss_mb()
    print(f"{peak:.0f} {before:.0f} {rate:.0f}")


def measure_memory(recipients: int, connections: int) -> tuple[str, str, str]:
    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = make_settings(Path(folder), port, connections)
            number = prepare(settings, recipients)
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.send",
                    "--memory-run",
                    "--folder",
                    folder,
                    "--port",
                    str(port),
                    "--edition",
                    str(number),
                    "--memory-recipients",
                    str(recipients),
                    "--connections",
                    str(connections),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
    finally:
        sink.kill()
    peak, before, rate = child.stdout.split()
    return peak, before, rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--memory-recipients", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--edition", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_run:
        memory_run(args.folder, args.port, args.connections, args.edition, args.memory_recipients)
        return
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        sys.exit("smtp-sink not found: install Debian's postfix package (make bench does)")

    port = free_port()
    sink = start_sink(port)
    rounds: list[Round] = []
    try:
        for _ in range(args.rounds):
            measured_round, size = one_round(port, sink.pid, args.recipients, args.connections)
            rounds.append(measured_round)
    finally:
        sink.kill()
    print(
        f"send benchmark: {args.recipients:,} recipients, {args.connections} connections, "
        f"{size / 1024:.1f} KiB per message, {len(rounds)} rounds"
    )
    for index, each in enumerate(rounds, 1):
        engine, source, plain = each.engine.rate, each.source.rate, each.plain.rate
        print(
            f"  round {index}: engine {engine:6,.0f} msg/s, smtp-source {source:6,.0f}, "
            f"smtplib {plain:6,.0f}; ratios {engine / source:.2f} and {engine / plain:.2f}"
        )
    median = statistics.median

    print(f"  median engine (SQLite outbox): {median([r.engine.rate for r in rounds]):8,.0f} msg/s")
    print(
        f"  median smtp-source -d:         {median([r.source.rate for r in rounds]):8,.0f} msg/s"
        f"   ratio {median([r.engine.rate / r.source.rate for r in rounds]):.2f}"
    )
    print(
        f"  median plain smtplib loop:     {median([r.plain.rate for r in rounds]):8,.0f} msg/s"
        f"   ratio {median([r.engine.rate / r.plain.rate for r in rounds]):.2f}"
    )
    sink_cpu = median([r.source.sink_cpu_us for r in rounds])
    print(
        f"  CPU per message: engine {median([r.engine.cpu_us for r in rounds]):.0f} us, "
        f"smtplib {median([r.plain.cpu_us for r in rounds]):.0f} us; smtp-sink itself "
        f"{median([r.engine.sink_cpu_us for r in rounds]):.0f} us for the engine's, "
        f"{sink_cpu:.0f} us for smtp-source's: the sink alone tops out near "
        f"{1e6 / sink_cpu:,.0f} msg/s here"
    )

    peak, before, rate = measure_memory(args.memory_recipients, args.connections)
    print(
        f"  memory: peak RSS {peak} MB sending to {args.memory_recipients:,} "
        f"(after imports and set-up: {before} MB), at {int(rate):,} msg/s"
    )


if __name__ == "__main__":
    main()
