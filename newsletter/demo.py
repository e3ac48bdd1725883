"""`newsletter demo`: the whole job on built-in defaults, in a throw-away folder."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from rich.console import Console

from newsletter.clock import utc_now
from newsletter.config import SECRET_KEY_ENV, Settings, settings_from_mapping
from newsletter.db import open_database
from newsletter.errors import NewsletterError
from newsletter.pipeline import draft_edition, fetch_all, preview_edition

DATA_DIR = Path(__file__).parent / "data"
SAMPLE_FEED = DATA_DIR / "sample-feed.xml"
SAMPLE_INTRO = DATA_DIR / "sample-intro.md"

DEMO_CONFIG = """\
# Written by `newsletter demo`; rerun any command on this demo with
#   newsletter --config {config}
[site]
base_url = "http://127.0.0.1:8000"

[feed]
urls = ["{feed}"]
max_articles = 8
min_new_articles = 1

[database]
url = "sqlite:///newsletter.db"
"""


def demo_settings(directory: Path, secret_key: str) -> Settings:
    """Write the demo's settings file into `directory` and load it as any command would."""
    config = directory / "newsletter.toml"
    config.write_text(
        DEMO_CONFIG.format(config=config, feed=SAMPLE_FEED.as_posix()), encoding="utf-8"
    )
    import tomllib

    data = tomllib.loads(config.read_text(encoding="utf-8"))
    return settings_from_mapping(
        data, base_dir=directory, env={SECRET_KEY_ENV: secret_key}, origin=str(config)
    )


def run_demo(directory: Path | None, *, out: Console) -> Path:
    """Fetch the sample feed, draft an edition and write its preview; return the folder."""
    workdir = directory or Path(tempfile.mkdtemp(prefix="newsletter-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(workdir, secrets.token_urlsafe(32))
    out.print(f"demo folder: {workdir}", markup=False)

    database = open_database(settings.database_url)
    try:
        reports = fetch_all(settings, database, clock=utc_now)
        for report in reports:
            if report.failed:
                raise NewsletterError(f"the sample feed failed: {report.error}")
            out.print(f"fetched the sample feed: {report.new} new articles", markup=False)

        result = draft_edition(
            settings,
            database,
            clock=utc_now,
            intro_markdown=SAMPLE_INTRO.read_text(encoding="utf-8"),
            force=True,
        )
        out.print(f"drafted edition {result.number} with {result.new_articles} articles")

        files = preview_edition(settings, database, result.number, workdir / "preview")
    finally:
        database.dispose()
    out.print("preview of the draft, as a subscriber will see it:")
    out.print(f"  HTML: {files.html}", markup=False)
    out.print(f"  text: {files.text}", markup=False)
    out.print(f"try: newsletter --config {workdir / 'newsletter.toml'} editions", markup=False)
    return workdir
