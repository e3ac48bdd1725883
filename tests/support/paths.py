"""Where the tests find the project's files and their own data."""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
ROOT = TESTS_DIR.parent
DATA_DIR = TESTS_DIR / "data"
GOLDEN_DIR = TESTS_DIR / "golden"
TEMPLATES_DIR = ROOT / "templates"
SEEDS_FEED = ROOT / "newsletter" / "data" / "sample-feed.xml"
