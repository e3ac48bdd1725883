"""What several send workers give: 1, 2 and 4 `newsletter worker` processes on one edition.

The same edition, message size and connections per worker as benchmarks/send.py, into
Postfix's smtp-sink on loopback. For each number of workers: a fresh database (a new
schema on PostgreSQL, a new file on SQLite) with N confirmed subscribers, the edition
handed over as `newsletter send N --workers` does, then that many `newsletter worker
--once` processes started together. It reports the wall time from their start to the
last one's exit (start-up included), the rate while messages went out (first to last
`sent_at` in the outbox), the CPU time the workers used per message, and how busy the
machine's cores were meanwhile (the database server, the sink and anything else
running count there too).

PostgreSQL: `--postgres-url` or $NEWSLETTER_BENCH_POSTGRES_URL, else the test suite's
$NEWSLETTER_TEST_POSTGRES_URL; without one only SQLite is measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from benchmarks.send import SECRET, free_port, prepare, start_sink
from newsletter.cli.demo import SAMPLE_FEED
from newsletter.core.clock import utc_now
from newsletter.core.config import Settings, settings_from_mapping
from newsletter.core.db import open_database
from newsletter.delivery.outbox import OutboxRow
from newsletter.delivery.send import prepare_send

BASE_URL = "https://nieuwsbrief.rvjeugdzorg.nl"
SENDER = "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"


@contextmanager
def fresh_database(kind: str, folder: Path, postgres_url: str | None) -> Iterator[str]:
    """The URL of an empty database: a SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        path = folder / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        return
    assert postgres_url is not None
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def write_settings(folder: Path, url: str, port: int, connections: int) -> tuple[Path, Settings]:
    """The settings of benchmarks/send.py, as a file for the workers and as an object."""
    config = folder / f"workers-{uuid.uuid4().hex[:8]}.toml"
    config.write_text(
        f'[site]\nbase_url = "{BASE_URL}"\n'
        f'[feed]\nurls = ["{SAMPLE_FEED.as_posix()}"]\n'
        f'[database]\nurl = "{url}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nmax_connections = {connections}\n'
        f'[sender]\nfrom = "{SENDER}"\n',
        encoding="utf-8",
    )
    settings = settings_from_mapping(
        {
            "site": {"base_url": BASE_URL},
            "feed": {"urls": [SAMPLE_FEED.as_posix()]},
            "database": {"url": url},
            "smtp": {"host": "127.0.0.1", "port": port, "max_connections": connections},
            "sender": {"from": SENDER},
        },
        base_dir=folder,
        env={"NEWSLETTER_SECRET_KEY": SECRET},
    )
    return config, settings


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [float(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    kind: str,
    workers: int,
    *,
    recipients: int,
    connections: int,
    port: int,
    folder: Path,
    postgres_url: str | None,
) -> tuple[float, float, float, float]:
    """Wall seconds from the workers' start to the last exit, messages/s while sending,
    the workers' CPU milliseconds per message, and the share of all cores that was busy."""
    with fresh_database(kind, folder, postgres_url) as url:
        config, settings = write_settings(folder, url, port, connections)
        number = prepare(settings, recipients)
        database = open_database(url)
        try:
            prepare_send(settings, database, number, now=utc_now())  # = send N --workers
            env = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET}
            command = [sys.executable, "-m", "newsletter", "--config", str(config), "worker"]
            cpu_before, (busy_before, total_before) = children_cpu(), cpu_times()
            started = time.perf_counter()
            processes = [
                subprocess.Popen([*command, "--once"], env=env, stdout=subprocess.DEVNULL)
                for _ in range(workers)
            ]
            codes = [process.wait() for process in processes]
            wall = time.perf_counter() - started
            cpu = children_cpu() - cpu_before
            busy_after, total_after = cpu_times()
            busy = (busy_after - busy_before) / max(total_after - total_before, 1.0)
            with database.session() as session:
                sent, first, last = session.execute(
                    select(
                        func.count(), func.min(OutboxRow.sent_at), func.max(OutboxRow.sent_at)
                    ).where(OutboxRow.edition_id == number, OutboxRow.state == "sent")
                ).one()
        finally:
            database.dispose()
    if sent != recipients or first is None or last is None or set(codes) - {0, 75}:
        raise RuntimeError(f"{kind}, {workers} workers: {sent} of {recipients} sent, exit {codes}")
    rate = recipients / max((last - first).total_seconds(), 1e-6)
    return wall, rate, cpu * 1000 / recipients, busy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4, help="per worker")
    parser.add_argument("--workers", default="1,2,4", help="numbers of workers to try")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("NEWSLETTER_BENCH_POSTGRES_URL")
        or os.environ.get("NEWSLETTER_TEST_POSTGRES_URL"),
    )
    parser.add_argument("--sqlite", action="store_true", help="measure SQLite too")
    args = parser.parse_args(argv)
    counts = [int(value) for value in args.workers.split(",")]
    kinds = (["postgresql"] if args.postgres_url else []) + (
        ["sqlite"] if args.sqlite or not args.postgres_url else []
    )
    print(
        f"workers benchmark: {args.recipients:,} recipients, {args.connections} connections "
        f"per worker, {os.cpu_count()} cores"
    )
    print(
        f"  {'database':<10} {'workers':>7} {'wall s':>7} {'msg/s sending':>14} {'× one':>6}"
        f" {'worker CPU ms/msg':>18} {'cores busy':>11}"
    )
    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as folder:
            for kind in kinds:
                first_rate = None
                for workers in counts:
                    wall, rate, cpu, busy = measure(
                        kind,
                        workers,
                        recipients=args.recipients,
                        connections=args.connections,
                        port=port,
                        folder=Path(folder),
                        postgres_url=args.postgres_url,
                    )
                    first_rate = first_rate or rate
                    print(
                        f"  {kind:<10} {workers:>7} {wall:>7.1f} {rate:>14,.0f} "
                        f"{rate / first_rate:>6.2f} {cpu:>18.2f} {busy:>11.0%}",
                        flush=True,
                    )
    finally:
        sink.kill()
        sink.wait()


if __name__ == "__main__":
    main()
