"""What each step of `newsletter send` costs before its first message, in a fresh process.

Run by benchmarks/send_process.py as `python -m benchmarks.send_phases CONFIG EDITION`
on a database prepared for it; it imports only what the command imports, in its order.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(config: Path, number: int) -> None:
    """Child process: each step `newsletter send` takes before its first message, timed."""
    marks: list[tuple[str, float, float]] = []
    started = time.perf_counter()

    def mark(what: str) -> None:
        marks.append((what, time.perf_counter(), peak_rss_mb()))

    import newsletter.cli.app  # noqa: F401  (what the command line loads to parse)

    mark("import the command line")
    from newsletter.core.config import load_settings

    settings = load_settings(config, os.environ)
    mark("read and check the settings")
    from newsletter.core.db import open_database

    database = open_database(settings.database_url)
    mark("open the database, check its schema")
    from newsletter.core.clock import utc_now
    from newsletter.delivery.send import message_templates, prepare_send, recipient_count

    mark("import the send (composition, SMTP, DKIM)")
    recipient_count(database, number)
    mark("count the recipients")
    content = prepare_send(settings, database, number, now=utc_now())
    mark("snapshot the recipients into the outbox")
    message_templates(content, settings, ["*"], now=utc_now())
    mark("compose the edition (one theme set)")
    database.dispose()
    previous = started
    for what, at, peak in marks:
        print(f"{(at - previous) * 1000:7.0f} ms  {what} (peak RSS so far {peak:.0f} MB)")
        previous = at
    print(f"{(previous - started) * 1000:7.0f} ms  in all (after Python itself started)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
