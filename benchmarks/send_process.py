"""The send as a user runs it: the whole `newsletter send N --yes` process, start to exit.

Everything counts here, as it does for the person at the terminal: starting Python,
imports, settings, the schema check, the snapshot of recipients, composition per theme
set, and then the send into Postfix's smtp-sink on loopback. Against it, in the same run
and on the same sink, Postfix's C tool `smtp-source -d` sends as many messages of the
same size over as many sessions; the two alternate in order from round to round, and
the ratios are taken within a round (this machine's speed moves from minute to minute).

Three parts:
- rounds: whole process vs smtp-source at N recipients, on SQLite and (with a URL) on
  PostgreSQL; per round the rate, the time until the first message was accepted (the
  first `sent_at` in the outbox, against the moment the process was started) and the
  process's CPU per message;
- phases: what each step before the first message costs, timed inside one process;
- scale: 20,000 / 100,000 / 1,000,000 recipients (SQLite): wall time, first message,
  peak RSS of the send process (memory must be flat in N, time linear).

PostgreSQL: `--postgres-url` or $NEWSLETTER_BENCH_POSTGRES_URL, else the test suite's
$NEWSLETTER_TEST_POSTGRES_URL, else a server answering on localhost (`pg_isready`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from benchmarks.send import SECRET, free_port, prepare, sample_message, start_sink
from benchmarks.send import smtp_source_rate as source_rate
from benchmarks.workers import fresh_database, write_settings

LOCAL_POSTGRES = "postgresql+psycopg://postgres@localhost/test"


def postgres_url(explicit: str | None) -> str | None:
    url = (
        explicit
        or os.environ.get("NEWSLETTER_BENCH_POSTGRES_URL")
        or os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    )
    if url:
        return url
    ready = shutil.which("pg_isready")
    if ready and subprocess.run([ready, "-q", "-h", "localhost"], check=False).returncode == 0:
        return LOCAL_POSTGRES
    return None


@dataclass(frozen=True)
class ProcessRun:
    wall: float  # seconds from the start of the process to its exit
    first: float  # seconds from the start of the process to the first accepted message
    rate: float  # recipients / wall
    cpu_us: float  # the process's user and system CPU per message
    peak_mb: float  # its peak RSS


def _first_sent(url: str, number: int) -> tuple[int, datetime | None]:
    from newsletter.core.db import open_database
    from newsletter.delivery.outbox import OutboxRow

    database = open_database(url, upgrade=False)
    try:
        with database.session() as session:
            sent, first = session.execute(
                select(func.count(), func.min(OutboxRow.sent_at)).where(
                    OutboxRow.edition_id == number, OutboxRow.state == "sent"
                )
            ).one()
    finally:
        database.dispose()
    return sent, first


def _high_water_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def send_process(config: Path, url: str, number: int, recipients: int) -> ProcessRun:
    """Run `newsletter send N --yes` as a separate process, as a person would."""
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET}
    command = [sys.executable, "-m", "newsletter", "--config", str(config)]
    started_wall = datetime.now(UTC)
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "send", str(number), "--yes"], env=env, stdout=subprocess.DEVNULL
    )
    peak_kb = 0
    while True:
        # The child's own high-water mark, read while it runs: its ru_maxrss would start
        # from this (big) parent's at the fork. Read every 20 ms; the send's memory
        # settles long before its end, so the last reading is its peak.
        peak_kb = max(peak_kb, _high_water_kb(process.pid))
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.02)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sent, first = _first_sent(url, number)
    if process.returncode != 0 or sent != recipients or first is None:
        raise RuntimeError(f"send exited {process.returncode}; {sent} of {recipients} sent")
    return ProcessRun(
        wall=wall,
        first=(first - started_wall).total_seconds(),
        rate=recipients / wall,
        cpu_us=(usage.ru_utime + usage.ru_stime) / recipients * 1e6,
        peak_mb=peak_kb / 1024,
    )


def message_size(folder: Path, port: int, connections: int) -> int:
    """The size of one real message of the edition (a small copy of the database)."""
    with fresh_database("sqlite", folder, None) as url:
        _config, settings = write_settings(folder, url, port, connections)
        number = prepare(settings, 3)
        return len(sample_message(settings, number, folder))


@dataclass(frozen=True)
class Round:
    kind: str
    product: ProcessRun
    source: float  # smtp-source's messages/s


def one_round(
    kind: str, index: int, *, folder: Path, port: int, size: int, args: argparse.Namespace
) -> Round:
    with fresh_database(kind, folder, args.postgres_url) as url:
        config, settings = write_settings(folder, url, port, args.connections)
        number = prepare(settings, args.recipients)

        def product() -> ProcessRun:
            return send_process(config, url, number, args.recipients)

        def source() -> float:
            return source_rate(port, args.recipients, size, args.connections)

        if index % 2:  # alternate who goes first
            measured_source, measured = source(), product()
        else:
            measured, measured_source = product(), source()
    return Round(kind, measured, measured_source)


def phases(kind: str, *, folder: Path, port: int, args: argparse.Namespace) -> None:
    """Run benchmarks/send_phases.py in a fresh process on a fresh database; print it."""
    with fresh_database(kind, folder, args.postgres_url) as url:
        config, settings = write_settings(folder, url, port, args.connections)
        number = prepare(settings, args.recipients)
        env = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET}
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.send_phases",
                str(config),
                str(number),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    print(f"  phases before the first message ({kind}, {args.recipients:,} recipients):")
    for line in child.stdout.splitlines():
        print(f"    {line}")


def scale(folder: Path, port: int, size: int, args: argparse.Namespace) -> None:
    print("  scale (SQLite, the whole process):")
    for recipients in args.scale:
        with fresh_database("sqlite", folder, None) as url:
            config, settings = write_settings(folder, url, port, args.connections)
            number = prepare(settings, recipients)
            run = send_process(config, url, number, recipients)
            database_file = Path(url.removeprefix("sqlite:///"))
            for path in database_file.parent.glob(database_file.name + "*"):
                path.unlink()
        print(
            f"    {recipients:>9,}: {run.wall:7.1f} s, {run.rate:6,.0f} msg/s, first message "
            f"after {run.first:5.2f} s, peak RSS {run.peak_mb:4.0f} MB, "
            f"{run.wall / recipients * 1e3:.3f} ms per recipient"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url")
    parser.add_argument(
        "--scale",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[20_000, 100_000, 1_000_000],
        help="recipient counts for the scale runs, e.g. 20000,100000 (empty: none)",
    )
    args = parser.parse_args(argv)
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        sys.exit("smtp-sink not found: install Debian's postfix package (make bench does)")
    args.postgres_url = postgres_url(args.postgres_url)
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])

    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work)
            size = message_size(folder, port, args.connections)
            print(
                f"send process benchmark: `newsletter send N --yes`, {args.recipients:,} "
                f"recipients, {args.connections} connections, {size / 1024:.1f} KiB per "
                f"message, {args.rounds} rounds, against `smtp-source -d -s "
                f"{args.connections}` on the same sink"
            )
            for kind in kinds if args.rounds else []:
                rounds = [
                    one_round(kind, index, folder=folder, port=port, size=size, args=args)
                    for index in range(args.rounds)
                ]
                for index, each in enumerate(rounds, 1):
                    run = each.product
                    print(
                        f"  {kind} round {index}: process {run.rate:6,.0f} msg/s "
                        f"(first message after {run.first:.2f} s, {run.cpu_us:.0f} us CPU "
                        f"per message, peak RSS {run.peak_mb:.0f} MB), smtp-source "
                        f"{each.source:6,.0f}; ratio {run.rate / each.source:.2f}"
                    )
                median = statistics.median
                print(
                    f"  {kind} median: process {median(r.product.rate for r in rounds):,.0f} "
                    f"msg/s, smtp-source {median(r.source for r in rounds):,.0f}, ratio "
                    f"{median(r.product.rate / r.source for r in rounds):.2f}, first message "
                    f"after {median(r.product.first for r in rounds):.2f} s"
                )
                phases(kind, folder=folder, port=port, args=args)
            if args.scale:
                scale(folder, port, size, args)
    finally:
        sink.kill()


if __name__ == "__main__":
    main()
