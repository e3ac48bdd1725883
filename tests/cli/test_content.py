"""`newsletter fetch` and `newsletter articles`, driven as a person or a cron job would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import RSS, run, with_feeds, write_config
from tests.support.httpserver import LocalHTTPServer, Response


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, database_url)


def test_fetch_exit_code_says_a_feed_failed(
    config: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    good = http_server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    with_feeds(config, http_server.url("/gone/"), good)
    result = run("--config", str(config), "fetch")
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert "1 of 2 feeds failed" in result.stderr
    assert len(json.loads(run("--config", str(config), "articles", "--json").stdout)) == 5


def test_fetch_without_feeds_is_a_clear_error(config: Path) -> None:
    result = run("--config", str(config), "fetch")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: no feeds configured: add [feed] urls = [...] to the settings"
    )
