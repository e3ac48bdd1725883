"""A bare TCP server on a loopback address: each connection handed to a test's function.

For servers no HTTP library would write: one that dribbles its headers a byte at a
time, or one that only records that somebody connected.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable

ConnectionHandler = Callable[[socket.socket, threading.Event], None]


class RawTCPServer:
    """Calls `handle(connection, stopping)` for every connection to `host`:<ephemeral>.

    `stopping` is set when the server stops, so a handler that waits can end early.
    """

    def __init__(self, handle: ConnectionHandler, *, host: str = "127.0.0.1") -> None:
        self.connections = 0
        self._stopping = threading.Event()
        owner = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner.connections += 1
                # The client may hang up, as a client under test should.
                with contextlib.suppress(OSError):
                    handle(self.request, owner._stopping)

        self._server = socketserver.ThreadingTCPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}{path}"

    def start(self) -> RawTCPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
