"""Shared fixtures: settings, a real database (SQLite, and PostgreSQL when configured),
a fixed clock and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from newsletter.core.config import Settings, settings_from_mapping
from newsletter.core.db import Database, open_database
from tests.support.clock import FixedClock
from tests.support.databases import POSTGRES_URL_ENV
from tests.support.httpserver import LocalHTTPServer
from tests.support.paths import SEEDS_FEED
from tests.support.tls import TestCa


def _backends() -> list[Any]:
    backends: list[Any] = ["sqlite"]
    if os.environ.get(POSTGRES_URL_ENV):
        backends.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return backends


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'newsletter.db'}"
        return
    base = os.environ[POSTGRES_URL_ENV]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    """Build validated Settings from TOML-shaped sections; the test database is preset."""

    def build(env: dict[str, str] | None = None, **sections: dict[str, Any]) -> Settings:
        data: dict[str, Any] = {"database": {"url": database_url}}
        data.update(sections)
        environment = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdef"}
        environment.update(env or {})
        return settings_from_mapping(data, base_dir=tmp_path, env=environment)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 17, 8, 0, tzinfo=UTC))


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    server = LocalHTTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def sample_feed_bytes() -> bytes:
    return SEEDS_FEED.read_bytes()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, PATIENCE_MS

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=PATIENCE_MS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    """A certificate authority of the test run's own (servers get certificates from it)."""
    return TestCa.make(tmp_path_factory.mktemp("ca"))
