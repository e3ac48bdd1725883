"""Run every benchmark in turn: `python -m benchmarks` (what `make bench` does)."""

from __future__ import annotations

from benchmarks import compose, send

compose.main()
send.main([])
