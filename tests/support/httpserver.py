"""A real HTTP server on 127.0.0.1 for tests: routes answer with canned or computed responses."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds before the status line: a stalling server. Stopping the server ends it.
    delay: float = 0.0


Handler = Callable[[Request], Response]


class LocalHTTPServer:
    """Serve `routes` on an ephemeral port; `requests` records what clients asked for."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self._stopping = threading.Event()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                request = Request("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                owner.requests.append(request)
                handler = owner.routes.get(self.path.split("?", 1)[0])
                response = handler(request) if handler else Response(404, b"not found")
                if response.delay:
                    owner._stopping.wait(response.delay)
                try:
                    self.send_response(response.status)
                    body = response.body
                    if isinstance(body, bytes):
                        self.send_header("Content-Length", str(len(body)))
                        for name, value in response.headers.items():
                            self.send_header(name, value)
                        self.end_headers()
                        self.wfile.write(body)
                    else:
                        # A streamed body without a length: the connection's end ends it.
                        self.send_header("Connection", "close")
                        for name, value in response.headers.items():
                            self.send_header(name, value)
                        self.end_headers()
                        for chunk in body:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls_context is not None:
            self._server.socket = tls_context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def serve(self, path: str, response: Response | Handler) -> str:
        """Answer GET `path` with `response` (or a function of the request); return its URL."""
        self.routes[path] = response if callable(response) else (lambda _request: response)
        return self.url(path)

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
