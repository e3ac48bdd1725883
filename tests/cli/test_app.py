"""The `newsletter` command, driven as a person or a cron job would drive it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from newsletter.cli.app import app
from tests.support.cli import run, write_config
from tests.support.paths import ROOT
from tests.support.waiting import PATIENCE_SECONDS


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, database_url)


def command_names() -> list[str]:
    names = []
    root = get_command(app)
    assert hasattr(root, "commands")
    for name, command in root.commands.items():
        if hasattr(command, "commands"):
            names += [f"{name} {sub}" for sub in command.commands]
        else:
            names.append(name)
    return sorted(names)


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in command_names() if f"`newsletter {name}" not in readme]
    assert not missing, f"commands missing from README.md: {missing}"


def test_bad_settings_exit_2_with_one_line_and_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text('[database]\nurl = "sqlite:///x.db"\n[smtp]\nport = "vijfentwintig"\n')
    result = run("--config", str(path), "fetch")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "smtp.port" in lines[0]
    assert not (tmp_path / "x.db").exists()


def test_missing_settings_file_exits_2(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "missing.toml"), "articles")
    assert result.exit_code == 2
    assert "config file not found" in result.stderr


def test_db_upgrade_is_idempotent(config: Path) -> None:
    assert run("--config", str(config), "db", "upgrade").exit_code == 0
    again = run("--config", str(config), "db", "upgrade")
    assert again.exit_code == 0 and "up to date" in again.stdout


def test_demo_prints_preview_paths_holding_the_seed_articles(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=PATIENCE_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    html_path = re.search(r"HTML: (\S+)", result.stdout)
    text_path = re.search(r"text: (\S+)", result.stdout)
    assert html_path and text_path
    html = Path(html_path.group(1)).read_text(encoding="utf-8")
    text = Path(text_path.group(1)).read_text(encoding="utf-8")
    for title in (
        "Eerste opbrengsten verkenning Radicale vernieuwing jeugdzorg",
        "Nieuw onderzoek jeugdbescherming vraagt om actie, doe mee!",
    ):
        assert title in html and title in text
