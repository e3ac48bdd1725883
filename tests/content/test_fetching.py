"""Fetching feeds from a real local HTTP server and from files."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from newsletter.content.connections import internal_kind
from newsletter.content.fetching import FetchResult, fetch_feed, make_http_client
from newsletter.core.errors import FetchError
from tests.support.httpserver import LocalHTTPServer, Request, Response
from tests.support.paths import DATA_DIR
from tests.support.rawserver import RawTCPServer
from tests.support.waiting import PATIENCE_SECONDS

FEEDS = DATA_DIR / "feeds"
FEED_BODY = (FEEDS / "wordpress.xml").read_bytes()
RSS_HEADERS = {"Content-Type": "application/rss+xml; charset=UTF-8"}
MAX_BYTES = 100_000


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_http_client(
        timeout=PATIENCE_SECONDS, user_agent="rvj-newsletter-test/1.0"
    ) as http_client:
        yield http_client


def fetch(
    source: str,
    client: httpx.Client,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = MAX_BYTES,
    timeout: float = PATIENCE_SECONDS,
) -> FetchResult:
    return fetch_feed(
        source,
        client=client,
        etag=etag,
        last_modified=last_modified,
        max_bytes=max_bytes,
        timeout=timeout,
    )


# -- HTTP: success and conditional GET --------------------------------------------------


def test_fetch_returns_body_type_and_validators(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    headers = {**RSS_HEADERS, "ETag": '"v1"', "Last-Modified": "Tue, 05 Mar 2024 08:30:00 GMT"}
    url = http_server.serve("/feed/", Response(200, FEED_BODY, headers))
    result = fetch(url, client)
    assert result == FetchResult(
        not_modified=False,
        body=FEED_BODY,
        url=url,
        content_type="application/rss+xml; charset=UTF-8",
        etag='"v1"',
        last_modified="Tue, 05 Mar 2024 08:30:00 GMT",
    )
    (request,) = http_server.requests
    assert request.headers["user-agent"] == "rvj-newsletter-test/1.0"
    assert "if-none-match" not in request.headers


def test_conditional_get_round_trip(http_server: LocalHTTPServer, client: httpx.Client) -> None:
    def feed(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(304, b"", {"ETag": '"v1"'})
        return Response(200, FEED_BODY, {**RSS_HEADERS, "ETag": '"v1"'})

    url = http_server.serve("/feed/", feed)
    first = fetch(url, client)
    assert not first.not_modified
    second = fetch(url, client, etag=first.etag, last_modified="Tue, 05 Mar 2024 08:30:00 GMT")
    assert second.not_modified
    assert second.body == b""
    assert second.etag == '"v1"'
    assert second.last_modified == "Tue, 05 Mar 2024 08:30:00 GMT"  # kept: the 304 had none
    sent = http_server.requests[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Tue, 05 Mar 2024 08:30:00 GMT"


def test_cookies_are_not_sent_back(http_server: LocalHTTPServer, client: httpx.Client) -> None:
    headers = {**RSS_HEADERS, "Set-Cookie": "tracker=abc; Path=/"}
    url = http_server.serve("/feed/", Response(200, FEED_BODY, headers))
    fetch(url, client)
    fetch(url, client)
    assert "cookie" not in http_server.requests[1].headers


# -- HTTP: redirects --------------------------------------------------------------------


def test_redirect_is_followed_and_the_final_url_reported(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    final = http_server.serve("/nieuw/feed/", Response(200, FEED_BODY, RSS_HEADERS))
    old = http_server.serve("/feed/", Response(301, b"", {"Location": "/nieuw/feed/"}))
    result = fetch(old, client)
    assert result.url == final
    assert result.body == FEED_BODY


def redirect_chain(server: LocalHTTPServer, hops: int) -> str:
    server.serve(f"/hop{hops}", Response(200, FEED_BODY, RSS_HEADERS))
    for hop in range(hops):
        server.serve(f"/hop{hop}", Response(302, b"", {"Location": f"/hop{hop + 1}"}))
    return server.url("/hop0")


def test_five_redirects_are_followed(http_server: LocalHTTPServer, client: httpx.Client) -> None:
    result = fetch(redirect_chain(http_server, 5), client)
    assert result.url == http_server.url("/hop5")


def test_six_redirects_are_too_many(http_server: LocalHTTPServer, client: httpx.Client) -> None:
    start = redirect_chain(http_server, 6)
    with pytest.raises(FetchError) as caught:
        fetch(start, client)
    assert str(caught.value) == f"{start}: too many redirects (more than 5)"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://ftp.example.org/feed.xml"])
def test_redirect_to_a_non_http_url_is_refused(
    http_server: LocalHTTPServer, client: httpx.Client, target: str
) -> None:
    url = http_server.serve("/feed/", Response(302, b"", {"Location": target}))
    scheme = target.split(":", 1)[0]
    with pytest.raises(FetchError) as caught:
        fetch(url, client)
    assert str(caught.value) == (
        f"{url}: refused a redirect to a {scheme}: URL; only http and https are followed"
    )


# -- HTTP: failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phrase"), [(404, "Not Found"), (500, "Internal Server Error"), (403, "Forbidden")]
)
def test_http_error_status(
    http_server: LocalHTTPServer, client: httpx.Client, status: int, phrase: str
) -> None:
    url = http_server.serve("/feed/", Response(status, b"<html>oeps</html>"))
    with pytest.raises(FetchError) as caught:
        fetch(url, client)
    assert str(caught.value) == f"{url}: HTTP {status} {phrase}"


def test_http_error_after_redirect_names_both_urls(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    url = http_server.serve("/feed/", Response(301, b"", {"Location": "/weg/"}))
    with pytest.raises(FetchError) as caught:
        fetch(url, client)
    assert str(caught.value) == (
        f"{url}: HTTP 404 Not Found (after a redirect to {http_server.url('/weg/')})"
    )


def test_connection_refused(client: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed/"
    with pytest.raises(FetchError) as caught:
        fetch(url, client)
    assert str(caught.value) == f"cannot connect to {url}: connection refused"


def test_server_that_never_answers_times_out(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    # It answers only when the server stops: the client's timeout is what ends the wait.
    never = Response(200, FEED_BODY, RSS_HEADERS, delay=PATIENCE_SECONDS)
    url = http_server.serve("/feed/", never)
    with pytest.raises(FetchError) as caught:
        fetch(url, client, timeout=1.0)
    assert str(caught.value) == f"{url}: timed out after 1.0 s"


def test_slow_drip_is_cut_at_the_deadline(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    def drip() -> Iterator[bytes]:
        # A byte every 0.2 s, for longer than any test waits: no single read waits long
        # enough to time out, and only the whole fetch's deadline can end it.
        for _ in range(int(PATIENCE_SECONDS / 0.2)):
            time.sleep(0.2)
            yield FEED_BODY[:1]

    url = http_server.serve("/feed/", lambda _request: Response(200, drip(), RSS_HEADERS))
    with pytest.raises(FetchError) as caught:
        fetch(url, client, timeout=1.0)
    assert str(caught.value) == f"{url}: timed out after 1.0 s"


def test_declared_length_over_the_cap_is_refused_before_reading(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    # The header claims a gigabyte; the body never comes, so only the header can fail it.
    def claims_a_gigabyte(_request: Request) -> Response:
        return Response(200, iter([b"<rss>"]), {**RSS_HEADERS, "Content-Length": "1000000000"})

    url = http_server.serve("/feed/", claims_a_gigabyte)
    with pytest.raises(FetchError) as caught:
        fetch(url, client, max_bytes=5_000_000)
    assert str(caught.value) == (f"{url} is larger than 5000000 bytes (Content-Length 1000000000)")


def test_streamed_body_over_the_cap_is_cut(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        for _ in range(10_000):
            sent.append(1)
            yield b"x" * 10_000

    url = http_server.serve("/feed/", lambda _request: Response(200, endless(), RSS_HEADERS))
    with pytest.raises(FetchError) as caught:
        fetch(url, client, max_bytes=50_000)
    assert str(caught.value) == f"{url} is larger than 50000 bytes"
    assert len(sent) < 10_000  # we hung up long before the end


def test_body_of_exactly_the_cap_is_accepted(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    url = http_server.serve("/feed/", Response(200, b"x" * 1000, RSS_HEADERS))
    assert len(fetch(url, client, max_bytes=1000).body) == 1000


@pytest.mark.parametrize("source", ["ftp://ftp.example.org/feed.xml", "gopher://example.org/1"])
def test_unsupported_schemes(client: httpx.Client, source: str) -> None:
    scheme = source.split(":", 1)[0]
    with pytest.raises(FetchError) as caught:
        fetch(source, client)
    assert str(caught.value) == (
        f"{source}: unsupported scheme {scheme!r}; use an http(s) URL, a file:// URL or a path"
    )


# -- files ------------------------------------------------------------------------------


def test_local_path_is_read(tmp_path: Path, client: httpx.Client) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED_BODY)
    result = fetch(str(path), client)
    assert result.body == FEED_BODY
    assert result.url == path.as_uri()
    assert not result.not_modified
    assert result.etag is None
    assert result.last_modified is None


def test_file_url_is_read(tmp_path: Path, client: httpx.Client) -> None:
    path = tmp_path / "mijn feeds" / "feed.xml"
    path.parent.mkdir()
    path.write_bytes(FEED_BODY)
    assert fetch(path.as_uri(), client).body == FEED_BODY


def test_missing_file(tmp_path: Path, client: httpx.Client) -> None:
    path = tmp_path / "weg.xml"
    with pytest.raises(FetchError) as caught:
        fetch(str(path), client)
    assert str(caught.value) == f"no such file: {path}"


def test_file_over_the_cap(tmp_path: Path, client: httpx.Client) -> None:
    path = tmp_path / "groot.xml"
    path.write_bytes(b"x" * 2000)
    with pytest.raises(FetchError) as caught:
        fetch(str(path), client, max_bytes=1000)
    assert str(caught.value) == f"{path} is larger than 1000 bytes"


def test_directory_is_not_a_feed_file(tmp_path: Path, client: httpx.Client) -> None:
    with pytest.raises(FetchError) as caught:
        fetch(str(tmp_path), client)
    assert str(caught.value) == f"{tmp_path} is a directory, not a feed file"


def test_file_url_on_another_host_is_refused(client: httpx.Client) -> None:
    with pytest.raises(FetchError) as caught:
        fetch("file://fileserver/feeds/site.xml", client)
    assert str(caught.value) == (
        "file://fileserver/feeds/site.xml: file URLs on another host (fileserver) are not supported"
    )


# -- content codings: undone a bounded piece at a time ---------------------------------


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9)


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzipped),
        ("x-gzip", gzipped),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send
        ("gzip, gzip", lambda data: gzipped(gzipped(data))),
        ("identity", lambda data: data),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw deflate", "gzip twice", "identity"],
)
def test_content_codings_are_undone(
    http_server: LocalHTTPServer, client: httpx.Client, coding: str, encode: Any
) -> None:
    headers = {**RSS_HEADERS, "Content-Encoding": coding}
    url = http_server.serve("/feed/", Response(200, encode(FEED_BODY), headers))
    assert fetch(url, client).body == FEED_BODY
    assert http_server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_stacked_gzip_bomb_is_cut_once_decoded_past_the_cap(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    bomb = gzipped(gzipped(bytes(50_000_000)))  # a few kilobytes on the wire
    headers = {**RSS_HEADERS, "Content-Encoding": "gzip, gzip"}
    url = http_server.serve("/feed/", Response(200, bomb, headers))
    with pytest.raises(FetchError) as caught:
        fetch(url, client, max_bytes=100_000)
    assert str(caught.value) == f"{url} is larger than 100000 bytes once decompressed"


def test_a_gzip_header_comment_counts_against_the_cap(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    # The outer layer gives out a gzip header whose comment is 50 MB long: the inner
    # layer eats it without giving out a byte, so only counting every layer stops it.
    comment = b"\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff" + b"x" * 50_000_000
    headers = {**RSS_HEADERS, "Content-Encoding": "gzip, gzip"}
    url = http_server.serve("/feed/", Response(200, gzipped(comment), headers))
    with pytest.raises(FetchError) as caught:
        fetch(url, client, max_bytes=100_000)
    assert str(caught.value) == f"{url} is larger than 100000 bytes once decompressed"


def test_three_stacked_codings_are_refused(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    headers = {**RSS_HEADERS, "Content-Encoding": "gzip, deflate, gzip"}
    url = http_server.serve("/feed/", Response(200, b"whatever", headers))
    with pytest.raises(FetchError) as caught:
        fetch(url, client)
    assert str(caught.value) == (
        f"{url}: refused: 3 stacked content codings (gzip, deflate, gzip); at most 2 are accepted"
    )


def test_a_coding_we_did_not_ask_for_is_refused(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    headers = {**RSS_HEADERS, "Content-Encoding": "br"}
    url = http_server.serve("/feed/", Response(200, b"\x0b\x02\x80", headers))
    with pytest.raises(FetchError) as caught:
        fetch(url, client)
    assert str(caught.value) == f"{url}: unsupported Content-Encoding 'br'"


def test_a_corrupt_gzip_body_is_one_line(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    headers = {**RSS_HEADERS, "Content-Encoding": "gzip"}
    url = http_server.serve("/feed/", Response(200, b"not gzip at all", headers))
    with pytest.raises(FetchError) as caught:
        fetch(url, client)
    assert str(caught.value).startswith(f"{url}: the gzip body is corrupt: ")


# -- one wall-clock deadline per fetch -------------------------------------------------


def dribble_headers(connection: socket.socket, stopping: threading.Event) -> None:
    connection.recv(65536)
    while not stopping.wait(0.2):
        connection.sendall(b"H")


def test_dribbled_headers_end_at_the_deadline(client: httpx.Client) -> None:
    server = RawTCPServer(dribble_headers).start()
    try:
        url = server.url("/feed/")
        with pytest.raises(FetchError) as caught:
            fetch(url, client, timeout=1.0)
    finally:
        server.stop()
    assert str(caught.value) == f"{url}: timed out after 1.0 s"


def test_slow_redirects_share_one_deadline(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    http_server.serve("/hop5", Response(200, FEED_BODY, RSS_HEADERS))
    for hop in range(5):
        slow = Response(302, b"", {"Location": f"/hop{hop + 1}"}, delay=0.5)
        http_server.serve(f"/hop{hop}", slow)
    url = http_server.url("/hop0")
    with pytest.raises(FetchError) as caught:
        fetch(url, client, timeout=1.0)
    assert str(caught.value) == f"{url}: timed out after 1.0 s"


# -- no redirects into internal addresses ------------------------------------------------


def test_redirect_to_another_loopback_address_is_refused(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    internal = RawTCPServer(lambda _connection, _stopping: None, host="127.0.0.2").start()
    try:
        target = internal.url("/archive/feed.xml")
        url = http_server.serve("/feed/", Response(302, b"", {"Location": target}))
        with pytest.raises(FetchError) as caught:
            fetch(url, client)
    finally:
        internal.stop()
    assert str(caught.value) == (
        f"{url}: refused a redirect to 127.0.0.2, a loopback address; "
        "only the configured URL may point to an internal address"
    )
    assert internal.connections == 0


def test_host_names_are_resolved_and_every_address_checked(
    http_server: LocalHTTPServer, client: httpx.Client
) -> None:
    # The configured host resolves to loopback: allowed, as it is what staff configured.
    # The redirect's host resolves to a public address and a private one: refused.
    names = {
        "feeds.rvjeugdzorg.test": ["127.0.0.1"],
        "cdn.example.test": ["93.184.215.14", "10.1.2.3"],
    }
    port = int(http_server.base_url.rsplit(":", 1)[1])
    http_server.serve("/feed/", Response(302, b"", {"Location": "http://cdn.example.test/f"}))
    url = f"http://feeds.rvjeugdzorg.test:{port}/feed/"
    with pytest.raises(FetchError) as caught:
        fetch_feed(
            url,
            client=client,
            max_bytes=MAX_BYTES,
            timeout=PATIENCE_SECONDS,
            resolve=lambda host, _port: names[host],
        )
    assert str(caught.value) == (
        f"{url}: refused a redirect to cdn.example.test (10.1.2.3), a private address; "
        "only the configured URL may point to an internal address"
    )
    assert http_server.requests[0].headers["host"] == f"feeds.rvjeugdzorg.test:{port}"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.7", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_internal_address_kinds(address: str, kind: str | None) -> None:
    assert internal_kind(address) == kind
