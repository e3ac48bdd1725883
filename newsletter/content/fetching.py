"""Getting a feed's bytes: HTTP(S) with conditional GET, size cap and deadline, or a file."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from newsletter.content.connections import FetchGuard, GuardedTransport, Resolver, resolve_host
from newsletter.content.decoding import (
    ACCEPT_ENCODING,
    CodingError,
    DecodedTooLarge,
    content_codings,
    decoded,
)
from newsletter.core.errors import FetchError

MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0
HTTP_SCHEMES = frozenset({"http", "https"})
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True)
class FetchResult:
    """A fetched feed: its bytes (b"" when not modified) and what to send next time."""

    not_modified: bool
    body: bytes
    url: str  # after redirects: the base for the feed's relative links
    content_type: str | None
    etag: str | None
    last_modified: str | None


def make_http_client(
    *, timeout: float, user_agent: str, verify: ssl.SSLContext | bool = True
) -> httpx.Client:
    """A client that follows up to five redirects and keeps no cookies between fetches;
    `verify` is how it checks certificates (True: the public CAs).

    Its connections are guarded (`connections.py`): inside `fetch_feed` they keep to the
    fetch's deadline and refuse redirects into internal addresses. Proxy settings in the
    environment are not used: a proxy would hide the address we must check.
    """
    # A policy that allows no domain: no feed can set a cookie that a later fetch,
    # of this or another feed, would send back.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        headers={"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        cookies=no_cookies,
        transport=GuardedTransport(verify=verify),
    )


def fetch_feed(
    source: str,
    *,
    client: httpx.Client,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int,
    timeout: float,
    resolve: Resolver = resolve_host,
) -> FetchResult:
    """The bytes of `source`: an http(s) URL, a file:// URL or a local path.

    For HTTP, `etag` and `last_modified` make the request conditional, and a 304 gives
    not_modified=True. The body is capped at `max_bytes`, on the wire and once decoded,
    and the whole fetch, redirects included, at `timeout` seconds of wall-clock time.
    A redirect may lead to an internal address (loopback, private, link-local, ...) only
    when `source` itself resolved to it; `resolve` looks host names up.
    Every failure is a FetchError with a one-line message.
    """
    try:
        scheme = urlsplit(source).scheme.lower()
    except ValueError as exc:
        raise FetchError(f"{source}: not a valid URL or path: {exc}") from exc
    if scheme in HTTP_SCHEMES:
        return _fetch_http(
            source,
            client=client,
            etag=etag,
            last_modified=last_modified,
            max_bytes=max_bytes,
            timeout=timeout,
            resolve=resolve,
        )
    if scheme == "file":
        return _read_file(_path_of_file_url(source), max_bytes=max_bytes)
    # A one-letter scheme is a Windows drive ("C:\feeds\site.xml").
    if not scheme or len(scheme) == 1:
        return _read_file(Path(source), max_bytes=max_bytes)
    raise FetchError(
        f"{source}: unsupported scheme {scheme!r}; use an http(s) URL, a file:// URL or a path"
    )


# -- files ------------------------------------------------------------------------------


def _path_of_file_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: file URLs on another host ({parts.netloc}) are not supported")
    return Path(url2pathname(parts.path))


def _read_file(path: Path, *, max_bytes: int) -> FetchResult:
    try:
        with path.open("rb") as file:
            body = file.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise FetchError(f"no such file: {path}") from exc
    except IsADirectoryError as exc:
        raise FetchError(f"{path} is a directory, not a feed file") from exc
    except PermissionError as exc:
        raise FetchError(f"cannot read {path}: permission denied") from exc
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(body) > max_bytes:
        raise FetchError(f"{path} is larger than {max_bytes} bytes")
    # No validators: reading a local file again costs less than keeping track of it.
    return FetchResult(
        not_modified=False,
        body=body,
        url=path.absolute().as_uri(),
        content_type=None,
        etag=None,
        last_modified=None,
    )


# -- HTTP -------------------------------------------------------------------------------


def _reason(exc: Exception) -> str:
    """A one-line reason from an httpx error: "connection refused", not "[Errno 111] ..."."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", " ".join(str(exc).split()))
    if not text:
        return type(exc).__name__
    return text[0].lower() + text[1:]


def _redirect_target_kind(exc: httpx.RequestError) -> str:
    """The scheme of the refused redirect target, such as "file:"."""
    try:
        return f"{exc.request.url.scheme}:"
    except RuntimeError:  # httpx raises this when no request is attached
        return "non-HTTP"


def _status_error(url: str, response: httpx.Response) -> FetchError:
    phrase = httpx.codes.get_reason_phrase(response.status_code)
    message = f"{url}: HTTP {response.status_code} {phrase}".rstrip()
    final_url = str(response.url)
    if final_url != url:
        message += f" (after a redirect to {final_url})"
    return FetchError(message)


def _timed_out(url: str, timeout: float) -> FetchError:
    return FetchError(f"{url}: timed out after {float(timeout)} s")


def _read_body(url: str, response: httpx.Response, *, max_bytes: int, guard: FetchGuard) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{url} is larger than {max_bytes} bytes (Content-Length {declared})")
    try:
        codings = content_codings(response.headers.get("content-encoding"))
    except CodingError as exc:
        raise FetchError(f"{url}: {exc}") from exc

    def in_time() -> None:
        if guard.expired or guard.remaining() <= 0:
            raise _timed_out(url, guard.timeout)

    received = 0

    def raw() -> Iterator[bytes]:
        nonlocal received
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise FetchError(f"{url} is larger than {max_bytes} bytes")
            in_time()
            yield chunk

    # The codings are undone here, a bounded piece at a time, and never by httpx, which
    # would decode a whole network chunk (gigabytes, for stacked gzip) before we count.
    chunks = []
    try:
        for chunk in decoded(raw(), codings, limit=max_bytes, tick=in_time):
            chunks.append(chunk)
    except DecodedTooLarge as exc:
        raise FetchError(f"{url} is larger than {max_bytes} bytes once decompressed") from exc
    except CodingError as exc:
        raise FetchError(f"{url}: {exc}") from exc
    # A body cut short by the deadline's shutdown ends like one that is complete.
    in_time()
    return b"".join(chunks)


def _fetch_http(
    url: str,
    *,
    client: httpx.Client,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    timeout: float,
    resolve: Resolver,
) -> FetchResult:
    guard = FetchGuard(url, timeout=timeout, resolve=resolve)
    try:
        with (
            guard.active(),
            client.stream(
                "GET",
                url,
                headers=_conditional_headers(etag, last_modified),
                timeout=httpx.Timeout(timeout),
                follow_redirects=True,
            ) as response,
        ):
            if guard.expired or guard.remaining() <= 0:  # the redirects used it up
                raise _timed_out(url, timeout)
            if response.status_code == httpx.codes.NOT_MODIFIED:
                return _not_modified(response, etag=etag, last_modified=last_modified)
            if not response.is_success:
                raise _status_error(url, response)
            body = _read_body(url, response, max_bytes=max_bytes, guard=guard)
    except httpx.HTTPError as exc:
        # A deadline that passed shuts the sockets down: whatever error that caused,
        # the reason is the deadline.
        if guard.expired or guard.remaining() <= 0:
            raise _timed_out(url, timeout) from exc
        raise _http_error(url, exc, client, timeout) from exc
    except httpx.InvalidURL as exc:
        raise FetchError(f"{url}: not a valid URL: {_reason(exc)}") from exc
    return FetchResult(
        not_modified=False,
        body=body,
        url=str(response.url),
        content_type=response.headers.get("content-type"),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def _http_error(url: str, exc: httpx.HTTPError, client: httpx.Client, timeout: float) -> FetchError:
    """The one-line FetchError for what httpx raised."""
    if isinstance(exc, httpx.TimeoutException):
        return _timed_out(url, timeout)
    if isinstance(exc, httpx.TooManyRedirects):
        return FetchError(f"{url}: too many redirects (more than {client.max_redirects})")
    if isinstance(exc, httpx.UnsupportedProtocol):
        kind = _redirect_target_kind(exc)
        return FetchError(
            f"{url}: refused a redirect to a {kind} URL; only http and https are followed"
        )
    if isinstance(exc, httpx.ConnectError):
        return FetchError(f"cannot connect to {url}: {_reason(exc)}")
    return FetchError(f"{url}: {_reason(exc)}")


def _conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """The request headers that let the server answer 304 when nothing changed."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _not_modified(
    response: httpx.Response, *, etag: str | None, last_modified: str | None
) -> FetchResult:
    # A 304 may carry new validators; otherwise the ones we sent still hold.
    return FetchResult(
        not_modified=True,
        body=b"",
        url=str(response.url),
        content_type=response.headers.get("content-type"),
        etag=response.headers.get("etag", etag),
        last_modified=response.headers.get("last-modified", last_modified),
    )
