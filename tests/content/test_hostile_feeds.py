"""Hostile feeds cost little: `newsletter fetch` of one hostile feed and one good one.

Each test runs the real command in a child process held to 1 GiB of address space and a
generous time cap (tests/support/bounded.py), against real local servers. What a person
checks: the hostile feed fails with a one-line reason (or, for HTML nested too deep, is
stored flattened), and the good feed beside it is fetched and stored all the same.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bounded import run_newsletter_bounded
from tests.support.cli import RSS, with_feeds, write_config
from tests.support.httpserver import LocalHTTPServer, Response
from tests.support.paths import TESTS_DIR
from tests.support.rawserver import RawTCPServer

HOSTILE = TESTS_DIR / "fixtures" / "hostile"
SAMPLE_ARTICLES = 5


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # SQLite only: the child process needs a database of its own, not a test's schema.
    return write_config(tmp_path, f"sqlite:///{tmp_path / 'newsletter.db'}")


def fetch_with(config: Path, hostile: str, good: str, *, extra: str = "") -> tuple[int, str, str]:
    with_feeds(config, hostile, good, extra=extra)
    result = run_newsletter_bounded("--config", str(config), "fetch")
    return result.returncode, result.stdout, result.stderr


def stored_articles(config: Path) -> list[dict[str, object]]:
    result = run_newsletter_bounded("--config", str(config), "articles", "--json")
    assert result.returncode == 0, result.stderr
    articles: list[dict[str, object]] = json.loads(result.stdout)
    return articles


def failure_line(stderr: str, url: str) -> str:
    """The one line `fetch` wrote about the failed feed."""
    [line] = [line for line in stderr.splitlines() if line.startswith("failed")]
    assert line.startswith(f"failed    {url}: ")
    return line


def serve_good(server: LocalHTTPServer, sample_feed_bytes: bytes) -> str:
    return server.serve("/good/feed/", Response(200, sample_feed_bytes, {"Content-Type": RSS}))


def assert_good_feed_stored(stdout: str, good: str, config: Path) -> None:
    assert f"ok        {good}: {SAMPLE_ARTICLES} new, 0 updated" in stdout
    assert len(stored_articles(config)) == SAMPLE_ARTICLES


# -- 1. a decompression bomb: gzip, gzip ------------------------------------------------


def test_stacked_gzip_bomb_fails_that_feed_only(
    config: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    bomb = (HOSTILE / "gzip-gzip-1gib-zeros.bin").read_bytes()  # 1 GiB decoded
    headers = {"Content-Type": RSS, "Content-Encoding": "gzip, gzip"}
    hostile = http_server.serve("/bomb/feed/", Response(200, bomb, headers))
    good = serve_good(http_server, sample_feed_bytes)
    code, stdout, stderr = fetch_with(config, hostile, good, extra="max_bytes = 1000000\n")
    assert code == 1
    assert failure_line(stderr, hostile) == (
        f"failed    {hostile}: {hostile} is larger than 1000000 bytes once decompressed"
    )
    assert_good_feed_stored(stdout, good, config)


# -- 2. entities hidden in UTF-7 ----------------------------------------------------------


def utf7_entity_feed() -> bytes:
    # Billion laughs written in UTF-7: "<" is "+ADw-", ">" is "+AD4-"; only a reader
    # that decodes UTF-7 sees the entity declarations.
    laughs = ['<!ENTITY a0 "' + "ha" * 50 + '">']
    laughs += [f'<!ENTITY a{n} "' + f"&a{n - 1};" * 10 + '">' for n in range(1, 9)]
    document = (
        "<!DOCTYPE rss [" + "".join(laughs) + "]>"
        '<rss version="2.0"><channel><title>Lach</title><item><title>Haha</title>'
        "<link>https://lach.example/1</link><description>&a8;</description></item>"
        "</channel></rss>"
    )
    hidden = document.replace("<", "+ADw-").replace(">", "+AD4-")
    return ('<?xml version="1.0" encoding="utf-7"?>\n' + hidden).encode("ascii")


def test_entities_hidden_in_utf7_fail_that_feed_only(
    config: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    hostile = http_server.serve(
        "/utf7/feed/", Response(200, utf7_entity_feed(), {"Content-Type": "application/rss+xml"})
    )
    good = serve_good(http_server, sample_feed_bytes)
    code, stdout, stderr = fetch_with(config, hostile, good)
    assert code == 1
    assert failure_line(stderr, hostile) == (
        f"failed    {hostile}: {hostile}: refused: the document is in UTF-7, "
        "which can hide markup from the checks; feeds use UTF-8"
    )
    assert_good_feed_stored(stdout, good, config)


# -- 3. HTML nested 50,000 deep -------------------------------------------------------


def deeply_nested_feed(depth: int) -> bytes:
    nested = "<ul><li>" * depth + "bodem" + "</li></ul>" * depth
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Diep</title>'
        "<item><title>Diep genest</title><link>https://diep.example/1</link>"
        f"<description><![CDATA[{nested}]]></description></item></channel></rss>"
    ).encode()


def test_html_nested_50000_deep_is_stored_flattened(
    config: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    # 50,000 levels is 900 KB of HTML: before, sanitizing it alone took minutes.
    hostile = http_server.serve(
        "/deep/feed/", Response(200, deeply_nested_feed(50_000), {"Content-Type": RSS})
    )
    good = serve_good(http_server, sample_feed_bytes)
    code, stdout, stderr = fetch_with(config, hostile, good)
    assert code == 0, stderr
    assert stderr.splitlines() == [
        f"warning: {hostile}: entry 1: its HTML nests deeper than 100 levels; flattened below that"
    ]
    assert f"ok        {hostile}: 1 new, 0 updated" in stdout
    assert len(stored_articles(config)) == SAMPLE_ARTICLES + 1


# -- 4. a server that dribbles its headers -------------------------------------------------


def dribble_headers(connection: socket.socket, stopping: threading.Event) -> None:
    connection.recv(65536)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Slow: "
    # A byte every 0.5 s, for far longer than any test waits: every read gets a byte
    # well within timeout_seconds, so only a deadline for the whole fetch ends it.
    for index in range(100_000):
        if stopping.wait(0.5):
            return
        connection.sendall(head[index : index + 1] or b"x")


@pytest.fixture
def dribbling_server() -> Iterator[RawTCPServer]:
    server = RawTCPServer(dribble_headers).start()
    yield server
    server.stop()


def test_dribbled_headers_end_at_the_deadline_and_fail_that_feed_only(
    config: Path,
    dribbling_server: RawTCPServer,
    http_server: LocalHTTPServer,
    sample_feed_bytes: bytes,
) -> None:
    hostile = dribbling_server.url("/feed/")
    good = serve_good(http_server, sample_feed_bytes)
    code, stdout, stderr = fetch_with(config, hostile, good, extra="timeout_seconds = 3\n")
    assert code == 1
    assert failure_line(stderr, hostile) == f"failed    {hostile}: {hostile}: timed out after 3.0 s"
    assert_good_feed_stored(stdout, good, config)


def test_five_slow_redirects_share_one_deadline(
    config: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    # Each hop answers after 1 s, within any per-read timeout; together they take 5 s.
    http_server.serve("/slow5", Response(200, sample_feed_bytes, {"Content-Type": RSS}))
    for hop in range(5):
        http_server.serve(
            f"/slow{hop}", Response(302, b"", {"Location": f"/slow{hop + 1}"}, delay=1.0)
        )
    hostile = http_server.url("/slow0")
    good = serve_good(http_server, sample_feed_bytes)
    code, stdout, stderr = fetch_with(config, hostile, good, extra="timeout_seconds = 2.5\n")
    assert code == 1
    assert failure_line(stderr, hostile) == f"failed    {hostile}: {hostile}: timed out after 2.5 s"
    assert_good_feed_stored(stdout, good, config)


# -- 5. a redirect to another loopback address ---------------------------------------------


def never_answer(connection: socket.socket, stopping: threading.Event) -> None:
    stopping.wait(1)


@pytest.fixture
def internal_server() -> Iterator[RawTCPServer]:
    # Another loopback address than the feeds', standing for a service on the fetcher's
    # own machine (127.0.0.0/8 is all loopback on Linux).
    server = RawTCPServer(never_answer, host="127.0.0.2").start()
    yield server
    server.stop()


def test_redirect_to_an_internal_address_fails_that_feed_only(
    config: Path,
    http_server: LocalHTTPServer,
    internal_server: RawTCPServer,
    sample_feed_bytes: bytes,
) -> None:
    target = internal_server.url("/archive/feed.xml")
    hostile = http_server.serve("/moved/feed/", Response(302, b"", {"Location": target}))
    good = serve_good(http_server, sample_feed_bytes)
    code, stdout, stderr = fetch_with(config, hostile, good)
    assert code == 1
    assert failure_line(stderr, hostile) == (
        f"failed    {hostile}: {hostile}: refused a redirect to 127.0.0.2, a loopback "
        "address; only the configured URL may point to an internal address"
    )
    assert internal_server.connections == 0
    assert_good_feed_stored(stdout, good, config)


# -- a feed too large for the memory there is -----------------------------------------------


def test_running_out_of_memory_fails_that_feed_only(
    config: Path, http_server: LocalHTTPServer, sample_feed_bytes: bytes
) -> None:
    # A 54 MB feed, within max_bytes, read by a process allowed 300 MB: the parsers run
    # out of memory. That is this feed's failure; the next feed is fetched all the same.
    big = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Groot</title>'
        "<item><title>Groot</title><description>"
        + "groot " * 9_000_000
        + "</description></item></channel></rss>"
    ).encode()
    hostile = http_server.serve("/big/feed/", Response(200, big, {"Content-Type": RSS}))
    good = serve_good(http_server, sample_feed_bytes)
    with_feeds(config, hostile, good, extra="max_bytes = 60000000\n")
    result = run_newsletter_bounded("--config", str(config), "fetch", memory_bytes=300 << 20)
    assert result.returncode == 1
    assert failure_line(result.stderr, hostile) == (
        f"failed    {hostile}: {hostile}: ran out of memory reading the feed"
    )
    assert_good_feed_stored(result.stdout, good, config)
