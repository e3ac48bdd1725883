"""`newsletter serve` against clients that open connections and never finish a request."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from newsletter.core.config import Settings
from newsletter.core.db import open_database
from newsletter.web.connections import RESERVED_DESCRIPTORS, ConnectionLimits
from newsletter.web.server import build_server
from tests.support.smtpserver import free_port
from tests.support.waiting import (
    PATIENCE_SECONDS,
    TIMEOUT_UNDER_TEST_SECONDS,
    joined,
    wait_until,
)

PARTIAL_HEADERS = (
    b"POST /api/subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
)
PARTIAL_BODY = (
    b"POST /api/subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"email": "'
)
DESCRIPTORS = 256  # the serving process's limit in the first test
IDLE_CLIENTS = 300  # more than it can hold open


def open_partial(port: int, data: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_SECONDS)
    connection.sendall(data)
    connection.setblocking(False)
    return connection


def closed_by_server(connection: socket.socket) -> bool:
    """Whether the server closed `connection` (without a word: nothing came before)."""
    try:
        data = connection.recv(4096)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    assert data == b"", data
    return True


def wait_until_closed(connections: list[socket.socket], what: str) -> None:
    open_ones = list(connections)

    def all_closed() -> bool:
        open_ones[:] = [each for each in open_ones if not closed_by_server(each)]
        return not open_ones

    wait_until(all_closed, what=what)


def healthy(port: int) -> bool:
    response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=PATIENCE_SECONDS)
    return response.status_code == 200 and response.json() == {"status": "ok"}


# Python with the descriptor limit lowered, running the rest of its command line.
WITH_FEW_DESCRIPTORS = f"""
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({DESCRIPTORS}, {DESCRIPTORS}))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def test_serve_stays_up_when_more_idle_partial_posts_come_than_it_has_descriptors(
    tmp_path: Path, database_url: str
) -> None:
    # 1,100 idle partial POSTs took the descriptors of a process allowed 1,024: /healthz
    # timed out, and 102,000 lines of "Too many open files" filled the log.
    port = free_port()
    config = tmp_path / "newsletter.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n[site]\nbase_url = "http://127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    log = tmp_path / "serve.log"
    env = {"NEWSLETTER_SECRET_KEY": "serve-test-secret-0123456789abcdef", "PATH": "/usr/bin:/bin"}
    with log.open("wb") as output:
        serve = ["-m", "newsletter", "--config", str(config), "serve", "--port", str(port)]
        process = subprocess.Popen(
            [sys.executable, "-c", WITH_FEW_DESCRIPTORS, *serve],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    connections: list[socket.socket] = []
    try:

        def answers() -> bool:
            try:
                return healthy(port)
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                return False

        wait_until(answers, what="serve to answer")
        connections += [open_partial(port, PARTIAL_HEADERS) for _ in range(IDLE_CLIENTS)]
        # Beyond the cap, the connections that waited longest were closed to make room.
        assert healthy(port)
        cap = (DESCRIPTORS - RESERVED_DESCRIPTORS) // 2
        wait_until(
            lambda: sum(closed_by_server(each) for each in connections) >= IDLE_CLIENTS - cap,
            what=f"the server to close the {IDLE_CLIENTS - cap} longest waiting connections",
        )
        # The rest go when their time to send the headers is up; the server stays well.
        wait_until_closed(connections, what="the server to close every idle connection")
        assert healthy(port)
    finally:
        for each in connections:
            each.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=PATIENCE_SECONDS)
    lines = log.read_text().splitlines()
    assert not [line for line in lines if "Too many open files" in line]
    assert not [line for line in lines if "Traceback" in line]
    closing = [line for line in lines if "connection(s)" in line]
    # One line says what happened (and another at most each minute), not one per client.
    assert 1 <= len(closing) <= 5, lines
    assert f"beyond the cap of {cap} open connections" in closing[0]


@contextmanager
def serving(settings: Settings, limits: ConnectionLimits) -> Iterator[int]:
    """`build_server` with `limits`, in a thread, on a free port; yields the port."""
    port = free_port()
    database = open_database(settings.database_url)
    server = build_server(settings, database, host="127.0.0.1", port=port, limits=limits)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="the server to start")
        yield port
    finally:
        server.should_exit = True
        try:
            joined(thread, what="the server")
        finally:
            database.dispose()


@pytest.fixture
def quick_deadlines(make_settings: Callable[..., Settings]) -> Iterator[int]:
    deadline = TIMEOUT_UNDER_TEST_SECONDS
    limits = ConnectionLimits(header_seconds=deadline, body_seconds=deadline, max_connections=50)
    with serving(make_settings(), limits) as port:
        yield port


def test_headers_that_never_end_are_cut_off_however_slowly_they_trickle(
    quick_deadlines: int,
) -> None:
    # A byte now and then keeps any idle timeout from firing: the deadline is for the whole.
    connection = open_partial(quick_deadlines, b"GET /healthz HTTP/1.1\r\n")
    stop = threading.Event()

    def trickle() -> bool:
        if closed_by_server(connection):
            return True
        try:
            connection.send(b"X")
        except (BrokenPipeError, ConnectionResetError):
            return True
        stop.wait(TIMEOUT_UNDER_TEST_SECONDS / 20)
        return False

    try:
        wait_until(trickle, what="the server to close a connection whose headers never end")
    finally:
        connection.close()


def test_a_body_that_never_completes_is_cut_off(quick_deadlines: int) -> None:
    connections = [open_partial(quick_deadlines, PARTIAL_BODY) for _ in range(3)]
    try:
        wait_until_closed(connections, what="the server to close connections with half a body")
        assert healthy(quick_deadlines)
    finally:
        for each in connections:
            each.close()


def test_a_connection_kept_alive_serves_one_request_after_another(quick_deadlines: int) -> None:
    with socket.create_connection(("127.0.0.1", quick_deadlines), timeout=PATIENCE_SECONDS) as c:
        for _ in range(3):
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                chunk = c.recv(4096)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")


def test_over_the_cap_the_longest_waiting_connection_makes_room(
    make_settings: Callable[..., Settings],
) -> None:
    # Deadlines far off: only the cap closes anything here.
    limits = ConnectionLimits(
        header_seconds=PATIENCE_SECONDS, body_seconds=PATIENCE_SECONDS, max_connections=5
    )
    with serving(make_settings(), limits) as port:
        connections = [open_partial(port, PARTIAL_HEADERS) for _ in range(10)]
        try:
            assert healthy(port)  # the eleventh connection: it closed the sixth oldest
            wait_until_closed(connections[:6], what="the six oldest connections to be closed")
            assert not [each for each in connections[6:] if closed_by_server(each)]
        finally:
            for each in connections:
                each.close()
