"""Benchmarks: `make bench` runs them all; figures go in docs/benchmarks.md."""
