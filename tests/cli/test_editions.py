"""`newsletter draft`, `editions`, `edition show` and `preview`, driven as a person would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import RSS, run, with_feeds, write_config
from tests.support.httpserver import LocalHTTPServer, Response


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, database_url)


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
