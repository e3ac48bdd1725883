"""Which databases the suite runs on: SQLite always, PostgreSQL when a URL is given."""

from __future__ import annotations

POSTGRES_URL_ENV = "NEWSLETTER_TEST_POSTGRES_URL"
