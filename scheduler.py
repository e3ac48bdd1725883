"""The scheduler service: `python scheduler.py [--config PATH] [--run-now]`.

Runs the newsletter job on `[schedule] cron` until SIGTERM or SIGINT; see
newsletter/jobs/scheduler.py. The same as `newsletter schedule`, for a systemd unit or a
container that starts a script.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from newsletter.core.config import find_config_path, load_settings
from newsletter.core.errors import NewsletterError
from newsletter.jobs.scheduler import configure_logging, run_scheduler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scheduler.py", description="Run the newsletter job on its schedule."
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="settings file (default: $NEWSLETTER_CONFIG, else ./newsletter.toml)",
    )
    parser.add_argument(
        "--run-now", action="store_true", help="also run the job once right at start"
    )
    args = parser.parse_args(argv)
    try:
        config_path = find_config_path(args.config, os.environ)
        settings = load_settings(config_path)
        configure_logging()
        run_scheduler(settings, config_path=config_path, run_now=args.run_now)
    except NewsletterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
