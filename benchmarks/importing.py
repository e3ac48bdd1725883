"""Importing subscribers: rows per second and peak memory of `subscribers import`.

A CSV file of N rows (default 100,000) in the CLI's format, with what a real old list
holds mixed in: 1 in 100 lines is not an address, 1 in 150 names an unknown theme, 1 in
200 repeats an earlier address in capitals; 1 in 50 addresses is on the list already
(confirmed), 1 in 100 is pending, 1 in 100 unsubscribed (suppressed) and 1 in 200 was
erased (a suppression only). For each database (a fresh SQLite file; a fresh schema on
PostgreSQL when a URL is known) and each mode (`--confirmed` with a consent note, the
migration from another tool; and without, which asks every new address to confirm) a
separate process reads the file and imports it with the library call the CLI makes
(`ListManagement.import_csv`). It prints the rows per second of the import (reading
the file included), also per CPU second of the importing process (on a busy machine
the steadier figure; PostgreSQL's own work is not in it), the whole process's wall
time (Python's start and imports included), the report's counts, and the process's
peak RSS. The confirmation mails of the second mode are built but not sent: sending
them is the mailer's work, measured by benchmarks/send.py.

PostgreSQL: `--postgres-url` or $NEWSLETTER_BENCH_POSTGRES_URL, else the test suite's
$NEWSLETTER_TEST_POSTGRES_URL; without one only SQLite is measured.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from benchmarks.send import SECRET, peak_rss_mb, process_cpu_seconds
from benchmarks.workers import fresh_database
from newsletter.core.clock import utc_now
from newsletter.core.config import Settings, settings_from_mapping
from newsletter.core.db import open_database
from subscribers.addresses import keyed_hash
from subscribers.models import Subscriber, Suppression
from subscribers.tokens import new_public_id

THEMES = ("opstarten-beweging", "kampvuurgesprekken", "mensen-en-initiatieven", "doe-je-mee")
NOTE = "Ledenlijst uit het oude systeem, toestemming per formulier"
MODES = ("confirmed", "pending")


def make_settings(folder: Path, url: str) -> Settings:
    return settings_from_mapping(
        {
            "database": {"url": url},
            "site": {"base_url": "https://nieuwsbrief.rvjeugdzorg.nl"},
            "sender": {"from": "Radicale vernieuwing jeugdzorg <nieuwsbrief@rvjeugdzorg.nl>"},
        },
        base_dir=folder,
        env={"NEWSLETTER_SECRET_KEY": SECRET},
    )


def address(index: int) -> str:
    return f"lezer{index}@example.org"


def write_csv(path: Path, rows: int) -> None:
    """The file to import: `rows` data lines, the mix described in the module docstring."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,themes\r\n")
        for index in range(rows):
            themes = ";".join(THEMES[: index % 4 + 1]) if index % 3 else ""
            email = address(index)
            if index % 100 == 1:
                email = f"lezer{index}-at-example.org"
            elif index % 150 == 2:
                themes = "sport"
            elif index % 200 == 3 and index > 3:
                email = address(index - 3).upper()
            out.write(f'{email},"Lezer {index}",{themes}\r\n')


def seed(settings: Settings, rows: int) -> None:
    """Who is known before the import: confirmed, pending, unsubscribed and erased people."""
    database = open_database(settings.database_url)
    now = utc_now() - timedelta(days=3)
    people: list[dict[str, object]] = []
    suppressed: list[dict[str, object]] = []
    for index in range(0, rows, 50):
        people.append(_person(address(index + 10), "confirmed", now))
    for index in range(0, rows, 100):
        people.append(_person(address(index + 20), "pending", now))
        people.append(_person(address(index + 30), "unsubscribed", now))
        suppressed.append(_suppression(address(index + 30), "unsubscribed", now))
    for index in range(0, rows, 200):
        suppressed.append(_suppression(address(index + 40), "erased", now))
    try:
        with database.session() as session:
            session.execute(insert(Subscriber), people)
            session.execute(insert(Suppression), suppressed)
    finally:
        database.dispose()


def _person(email: str, status: str, now: object) -> dict[str, object]:
    return {
        "public_id": new_public_id(),
        "email": email,
        "email_key": email.casefold(),
        "name": None,
        "status": status,
        "themes": [],
        "created_at": now,
        "updated_at": now,
        "confirmed_at": now if status == "confirmed" else None,
        "unsubscribed_at": now if status == "unsubscribed" else None,
    }


def _suppression(email: str, reason: str, now: object) -> dict[str, object]:
    hashed = keyed_hash(email.casefold(), SECRET)
    return {"address_hash": hashed, "reason": reason, "created_at": now}


def import_run(folder: Path, url: str, path: Path, mode: str) -> None:
    """Child process: import `path` as the CLI does; print seconds, counts and peak RSS."""
    from subscribers.consent import Requester
    from subscribers.importing import decode_file
    from subscribers.management import ListManagement

    settings = make_settings(folder, url)
    database = open_database(settings.database_url)
    people = ListManagement(settings, database, clock=utc_now)
    started, cpu_before = time.perf_counter(), process_cpu_seconds()
    report = people.import_csv(
        io.StringIO(decode_file(path.read_bytes()), newline=""),
        requester=Requester(source="import"),
        confirmed=mode == "confirmed",
        consent_note=NOTE if mode == "confirmed" else None,
    )
    seconds, cpu = time.perf_counter() - started, process_cpu_seconds() - cpu_before
    database.dispose()
    print(
        f"{seconds:.3f} {cpu:.3f} {report.rows} {report.confirmed} {report.pending} "
        f"{report.unchanged} {len(report.problems)} {len(report.mails)} {peak_rss_mb():.0f}"
    )


def measure(
    kind: str, mode: str, rows: int, folder: Path, csv_path: Path, postgres_url: str | None
) -> str:
    with fresh_database(kind, folder, postgres_url) as url:
        seed(make_settings(folder, url), rows)
        started = time.perf_counter()
        child = subprocess.run(
            [
                *(sys.executable, "-m", "benchmarks.importing", "--import-run", "--url", url),
                *("--folder", str(folder), "--file", str(csv_path), "--mode", mode),
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
    if child.returncode:
        raise RuntimeError(f"{kind}, {mode}: the import failed:\n{child.stderr}")
    seconds, cpu, total, confirmed, pending, unchanged, problems, mails, peak = child.stdout.split()
    rate, cpu_rate = int(total) / float(seconds), int(total) / float(cpu)
    return (
        f"  {kind:<10} {mode:<9} {int(total):>8,} {float(seconds):>9.1f} {rate:>8,.0f} "
        f"{float(cpu):>6.1f} {cpu_rate:>9,.0f} "
        f"{wall:>7.1f} {int(peak):>7}   {confirmed}/{pending}/{unchanged}/{problems}/{mails}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--modes", default=",".join(MODES), help="confirmed, pending or both")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("NEWSLETTER_BENCH_POSTGRES_URL")
        or os.environ.get("NEWSLETTER_TEST_POSTGRES_URL"),
    )
    parser.add_argument("--import-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.import_run:
        import_run(args.folder, args.url, args.file, args.mode)
        return
    modes = [mode for mode in args.modes.split(",") if mode]
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    print(f"import benchmark: {args.rows:,} rows, {os.cpu_count()} cores")
    print(
        f"  {'database':<10} {'mode':<9} {'rows':>8} {'import s':>9} {'rows/s':>8} "
        f"{'CPU s':>6} {'rows/CPU s':>9} {'wall s':>7} {'peak MB':>7}   "
        "confirmed/pending/unchanged/not imported/mails"
    )
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        csv_path = folder / "leden.csv"
        write_csv(csv_path, args.rows)
        for kind in kinds:
            for mode in modes:
                line = measure(kind, mode, args.rows, folder, csv_path, args.postgres_url)
                print(line, flush=True)


if __name__ == "__main__":
    main()
