"""The connections a feed fetch opens: one wall-clock deadline, and no internal addresses.

A fetch (the configured URL and its redirects) runs inside `FetchGuard.active()`. Every
connection it opens then goes through `GuardedTransport`, whose network backend:

- resolves the host itself and refuses it when any address is internal (loopback,
  link-local, private, multicast, unspecified, reserved), unless the configured URL's own
  host resolved to that address; it connects to the address it checked, so a name that
  resolves differently a moment later (DNS rebinding) cannot slip past;
- gives every connect, read and write at most the time left until the deadline, and
  shuts the sockets down when the deadline passes, so no server can stretch a fetch by
  dribbling bytes, slow redirects or a slow TLS handshake.

Connections are not kept alive between requests: every request, redirects included,
opens (and checks) its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from newsletter.core.errors import FetchError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ACTIVE: ContextVar[FetchGuard | None] = ContextVar("newsletter_fetch_guard", default=None)


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the order the system prefers them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def internal_kind(address: str) -> str | None:
    """What kind of internal address `address` is ("loopback", "private", ...), or None
    when it is a public one."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


class FetchGuard:
    """One fetch's deadline and the internal addresses it may reach.

    The first connection is to the configured URL: whatever its host resolves to is
    allowed, for that connection and for the redirects. Every later connection must
    resolve to public addresses only, or to those same ones.
    """

    def __init__(self, url: str, *, timeout: float, resolve: Resolver = resolve_host) -> None:
        self.url = url
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self._resolve = resolve
        self._granted: set[str] | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.expired = False

    @contextlib.contextmanager
    def active(self) -> Iterator[FetchGuard]:
        """Guard the connections opened in this block; shut them down at the deadline."""
        token = _ACTIVE.set(self)
        watchdog = threading.Timer(max(self.remaining(), 0.0), self._expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            yield self
        finally:
            watchdog.cancel()
            _ACTIVE.reset(token)
            with self._lock:
                sockets, self._sockets = self._sockets, []
            for sock in sockets:
                sock.close()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def time_left(self, timeout: float | None, exceeded: type[httpcore.TimeoutException]) -> float:
        """`timeout` shortened to the time left; `exceeded` raised when none is left."""
        left = self.remaining()
        if left <= 0 or self.expired:
            raise exceeded(f"the fetch's deadline of {self.timeout} s passed")
        return left if timeout is None else min(timeout, left)

    def _expire(self) -> None:
        # A read blocked in the kernel (a TLS handshake, a dribbling server) only wakes
        # when its socket is shut down; closing it from this thread would not do that.
        self.expired = True
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down (through a duplicate of it) when the deadline passes."""
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
        if self.expired:
            with contextlib.suppress(OSError):
                duplicate.shutdown(socket.SHUT_RDWR)

    def addresses_for(self, host: str, port: int) -> list[str]:
        """The checked addresses to connect to for `host`; FetchError when one is refused."""
        addresses = self._resolve_in_time(host, port)
        if self._granted is None:  # the configured URL itself
            self._granted = set(addresses)
            return addresses
        for address in addresses:
            kind = internal_kind(address)
            if kind is not None and address not in self._granted:
                named = host if host == address else f"{host} ({address})"
                raise FetchError(
                    f"{self.url}: refused a redirect to {named}, a {kind} address; "
                    "only the configured URL may point to an internal address"
                )
        return addresses

    def _resolve_in_time(self, host: str, port: int) -> list[str]:
        # getaddrinfo cannot be interrupted: it runs aside, and the fetch stops waiting
        # for it at the deadline.
        outcome: list[list[str] | BaseException] = []

        def lookup() -> None:
            try:
                outcome.append(self._resolve(host, port))
            except BaseException as exc:  # handed over to the fetch's thread
                outcome.append(exc)

        worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
        worker.start()
        worker.join(self.time_left(None, httpcore.ConnectTimeout))
        if not outcome:
            raise httpcore.ConnectTimeout(f"looking up {host} took longer than the deadline")
        result = outcome[0]
        if isinstance(result, OSError):
            raise httpcore.ConnectError(str(result)) from result
        if isinstance(result, BaseException):
            raise result
        if not result:
            raise httpcore.ConnectError(f"{host} has no address")
        return result


class _GuardedStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, guard: FetchGuard) -> None:
        self._inner = inner
        self._guard = guard

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._guard.time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._guard.time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._guard.time_left(timeout, httpcore.ConnectTimeout)
        return _GuardedStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._guard
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Opens connections to checked addresses, within the active fetch's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        guard = _ACTIVE.get()
        if guard is None:  # not inside a feed fetch: an ordinary connection
            return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        failure: httpcore.ConnectError | None = None
        for address in guard.addresses_for(host, port):
            left = guard.time_left(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(address, port, left, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            guard.watch(stream.get_extra_info("socket"))
            return _GuardedStream(stream, guard)
        assert failure is not None  # addresses_for never answers with no address
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("feeds are not fetched over Unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# httpcore's errors as httpx's, most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        if isinstance(exc, httpcore.TimeoutException | httpcore.NetworkError):
            raise httpx.TransportError(str(exc)) from exc
        raise


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """httpx's transport over connections that the active `FetchGuard` checks and times."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True) -> None:
        context = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify)
        )
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
