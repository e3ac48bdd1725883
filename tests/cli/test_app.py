"""The `newsletter` command, driven as a person or a cron job would drive it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from newsletter.cli.app import app
from tests.support.httpserver import LocalHTTPServer, Response
from tests.support.paths import ROOT

RSS = "application/rss+xml; charset=utf-8"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    return path


def with_feeds(config: Path, *urls: str, extra: str = "") -> Path:
    feeds = ", ".join(f'"{url}"' for url in urls)
    text = config.read_text(encoding="utf-8") + f"[feed]\nurls = [{feeds}]\n{extra}"
    config.write_text(text, encoding="utf-8")
    return config


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


def test_fetch_draft_show_preview(
    config: Path, tmp_path: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    url = http_server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    with_feeds(config, url)
    fetched = run("--config", str(config), "fetch")
    assert fetched.exit_code == 0, fetched.output
    assert "5 new" in fetched.stdout

    listed = json.loads(run("--config", str(config), "articles", "--json").stdout)
    assert len(listed) == 5
    assert listed[0]["title"] == "Wat als we het fundamenteel anders doen? Jeugdzorg uit de knel"

    intro = tmp_path / "intro.md"
    intro.write_text("Beste lezer, **welkom** bij de nieuwsbrief.\n", encoding="utf-8")
    drafted = json.loads(
        run("--config", str(config), "draft", "--intro", str(intro), "--json").stdout
    )
    assert drafted["created"] is True and drafted["new_articles"] == 5

    shown = json.loads(
        run("--config", str(config), "edition", "show", str(drafted["number"]), "--json").stdout
    )
    assert shown["state"] == "draft"
    assert [a["title"] for a in shown["articles"]] == [a["title"] for a in listed]
    assert shown["intro_markdown"].startswith("Beste lezer")

    editions = json.loads(run("--config", str(config), "editions", "--json").stdout)
    assert [(e["number"], e["articles"]) for e in editions] == [(drafted["number"], 5)]

    out_dir = tmp_path / "preview"
    previewed = run("--config", str(config), "preview", "--out", str(out_dir))
    assert previewed.exit_code == 0, previewed.output
    html = (out_dir / f"edition-{drafted['number']}.html").read_text(encoding="utf-8")
    text = (out_dir / f"edition-{drafted['number']}.txt").read_text(encoding="utf-8")
    for article in listed:
        assert article["title"] in text
    assert "Eerste opbrengsten verkenning Radicale vernieuwing jeugdzorg" in html
    assert "<strong>welkom</strong>" in html


def test_draft_with_nothing_new_says_so_and_exits_0(
    config: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    url = http_server.serve("/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    with_feeds(config, url, extra="min_new_articles = 6\n")
    run("--config", str(config), "fetch")
    result = run("--config", str(config), "draft")
    assert result.exit_code == 0
    assert result.stdout.startswith("nothing new")
    assert json.loads(run("--config", str(config), "editions", "--json").stdout) == []
    forced = run("--config", str(config), "draft", "--force")
    assert forced.exit_code == 0 and "created draft edition" in forced.stdout


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["edition", "show", "99"], "error: no edition 99"),
        (["preview"], "error: there is no edition yet; run 'newsletter draft' first"),
        (["draft", "--intro", "/nonexistent/intro.md"], "error: intro file not found"),
    ],
)
def test_bad_requests_get_one_line_and_exit_1(config: Path, args: list[str], message: str) -> None:
    result = run("--config", str(config), *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_argument_type_exits_2(config: Path) -> None:
    result = run("--config", str(config), "edition", "show", "drie")
    assert result.exit_code == 2


def test_db_upgrade_is_idempotent(config: Path) -> None:
    assert run("--config", str(config), "db", "upgrade").exit_code == 0
    again = run("--config", str(config), "db", "upgrade")
    assert again.exit_code == 0 and "up to date" in again.stdout


def test_demo_prints_preview_paths_holding_the_seed_articles(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
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
