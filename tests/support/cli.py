"""Driving the `newsletter` command in-process, on a settings file of the test's own."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from newsletter.cli.app import app

RSS = "application/rss+xml; charset=utf-8"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def write_config(tmp_path: Path, database_url: str) -> Path:
    """A settings file naming only the test's database."""
    path = tmp_path / "newsletter.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    return path


def with_feeds(config: Path, *urls: str, extra: str = "") -> Path:
    feeds = ", ".join(f'"{url}"' for url in urls)
    text = config.read_text(encoding="utf-8") + f"[feed]\nurls = [{feeds}]\n{extra}"
    config.write_text(text, encoding="utf-8")
    return config
