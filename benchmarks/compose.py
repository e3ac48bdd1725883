"""How long composing an edition takes, and how cheap filling it in per reader is.

Composition (Jinja2, MJML, premailer) runs once per edition and theme set; per reader
only the slots are filled. This measures both on the demo's edition (the sample feed).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

from newsletter.cli.demo import SAMPLE_FEED, SAMPLE_INTRO
from newsletter.content.ingest import fetch_all
from newsletter.core.clock import utc_now
from newsletter.core.config import settings_from_mapping
from newsletter.core.db import open_database
from newsletter.core.templating import template_environment
from newsletter.editions.compose import compose_edition
from newsletter.editions.drafting import draft_edition
from newsletter.editions.lifecycle import get_edition
from newsletter.editions.personalized import RecipientValues
from newsletter.editions.preview import edition_content

READERS = 100_000
COMPOSITIONS = 20


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = settings_from_mapping(
            {
                "feed": {"urls": [str(SAMPLE_FEED)]},
                "database": {"url": f"sqlite:///{Path(folder) / 'bench.db'}"},
            },
            base_dir=Path(folder),
            env={"NEWSLETTER_SECRET_KEY": "bench-secret-0123456789abcdefghij"},
        )
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
        with database.session() as session:
            content = edition_content(get_edition(session, result.number))
        database.dispose()

    environment = template_environment(settings)
    timings = []
    mail = None
    for _ in range(COMPOSITIONS):
        started = time.perf_counter()
        mail = compose_edition(content, settings, environment=environment)
        timings.append(time.perf_counter() - started)
    assert mail is not None

    readers = (
        RecipientValues(
            email=f"lezer{i}@example.org",
            name=f"Lezer {i}",
            unsubscribe_url=f"{settings.site.base_url}/unsubscribe/{i:032x}",
            preferences_url=f"{settings.site.base_url}/preferences/{i:032x}",
        )
        for i in range(READERS)
    )
    started = time.perf_counter()
    size = 0
    for reader in readers:
        size += len(mail.html_for(reader)) + len(mail.text_for(reader))
    fill_seconds = time.perf_counter() - started

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("compose benchmark (demo edition, 5 articles)")
    print(
        f"  compose once:      median {statistics.median(timings) * 1000:.0f} ms "
        f"(min {min(timings) * 1000:.0f} ms, {COMPOSITIONS} runs)"
    )
    print(
        f"  fill per reader:   {READERS / fill_seconds:,.0f} readers/s "
        f"(HTML + text, {size / READERS / 1024:.1f} KiB per reader)"
    )
    print(f"  peak RSS:          {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
