"""A run's counts and summary line."""

from __future__ import annotations

from newsletter.jobs.report import RunCounts


def test_counts_read_back_from_the_record() -> None:
    counts = RunCounts(feeds=1, new_articles=3, edition=4, sent=1234, purged_subscribers=2)
    again = RunCounts.from_json({**counts.as_json(), "from_a_newer_version": 1})
    assert again == counts
