"""Run every benchmark in turn: `python -m benchmarks` (what `make bench` does)."""

from __future__ import annotations

from benchmarks import compose, importing, peers, send, send_process, signup, workers

compose.main()
send.main([])
send_process.main([])  # PostgreSQL too when a server answers on localhost
peers.main([])  # django-newsletter from PyPI, into .cache/peers/; skipped offline
workers.main([])  # PostgreSQL when $NEWSLETTER_BENCH_POSTGRES_URL (or the tests') is set
signup.main([])
importing.main([])  # SQLite, and PostgreSQL as workers finds it
