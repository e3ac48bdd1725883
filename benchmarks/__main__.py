"""Run every benchmark in turn: `python -m benchmarks` (what `make bench` does)."""

from __future__ import annotations

from benchmarks import compose, importing, send, workers

compose.main()
send.main([])
workers.main([])  # PostgreSQL when $NEWSLETTER_BENCH_POSTGRES_URL (or the tests') is set
importing.main([])  # SQLite, and PostgreSQL as workers finds it
