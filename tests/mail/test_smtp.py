"""The SMTP client against a real aiosmtpd server, with faults switched on per test."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from newsletter.core.errors import SmtpConnectError, SmtpConnectionLost
from newsletter.mail.smtp import SmtpConnection, SmtpOptions, TransactionResult
from newsletter.mail.smtp_protocol import wire_form
from tests.support.smtpserver import TestSmtpServer, free_port
from tests.support.waiting import PATIENCE_SECONDS, TIMEOUT_UNDER_TEST_SECONDS, wait_until_async

TIMEOUT = TIMEOUT_UNDER_TEST_SECONDS
TIMED_OUT = re.escape(f"timed out after {TIMEOUT:g} s")
MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: Hallo\r\n\r\n"
    b"Eerste regel\r\n.een regel met een punt\r\nLaatste regel\r\n"
)


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[TestSmtpServer]:
    server = TestSmtpServer(pipelining=request.param).start()
    yield server
    server.stop()


def options(server: TestSmtpServer | _ScriptedServer, **overrides: object) -> SmtpOptions:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "timeout": PATIENCE_SECONDS,
    }
    settings.update(overrides)
    return SmtpOptions(**settings)  # type: ignore[arg-type]


def send(
    server: TestSmtpServer | _ScriptedServer, *recipients: str, **overrides: object
) -> TransactionResult:
    async def go() -> TransactionResult:
        async with await SmtpConnection.open(options(server, **overrides)) as connection:
            return await connection.send(
                "bounces@example.org", list(recipients), wire_form(MESSAGE)
            )

    return asyncio.run(go())


def test_message_arrives_intact(smtp_server: TestSmtpServer) -> None:
    result = send(smtp_server, "lezer@example.org")
    assert result.delivered == ["lezer@example.org"]
    [received] = smtp_server.received
    assert received.sender == "bounces@example.org"
    assert received.recipients == ["lezer@example.org"]
    assert b"\r\n.een regel met een punt\r\n" in received.data
    assert smtp_server.mail_inside_mail == 0


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_with_dsn_offered_a_report_returns_the_headers_only(pipelining: bool) -> None:
    # RET=HDRS: a bounce then carries the original's headers (with our signed Message-ID
    # and List-Unsubscribe token, which tie it to its subscriber), not a copy of the mail.
    server = TestSmtpServer(pipelining=pipelining, dsn=True).start()
    try:
        assert send(server, "lezer@example.org").delivered == ["lezer@example.org"]
    finally:
        server.stop()
    [options_of_mail] = server.mail_options
    assert "RET=HDRS" in options_of_mail


def test_without_dsn_there_is_no_dsn_parameter(smtp_server: TestSmtpServer) -> None:
    send(smtp_server, "lezer@example.org")
    [options_of_mail] = smtp_server.mail_options
    assert not any(option.startswith("RET=") for option in options_of_mail)


def test_refused_recipient_is_reported_and_the_rest_delivered(
    smtp_server: TestSmtpServer,
) -> None:
    smtp_server.faults.rcpt["weg@example.org"] = "550 5.1.1 no such user"
    result = send(smtp_server, "weg@example.org", "lezer@example.org")
    assert result.delivered == ["lezer@example.org"]
    assert result.reply_for("weg@example.org").permanent
    assert str(result.reply_for("weg@example.org")) == "550 5.1.1 no such user"


def test_all_refused_resets_and_the_connection_goes_on(smtp_server: TestSmtpServer) -> None:
    smtp_server.faults.rcpt["weg@example.org"] = "550 5.1.1 no such user"

    async def go() -> tuple[TransactionResult, TransactionResult]:
        async with await SmtpConnection.open(options(smtp_server)) as connection:
            first = await connection.send("b@example.org", ["weg@example.org"], wire_form(MESSAGE))
            second = await connection.send(
                "b@example.org", ["lezer@example.org"], wire_form(MESSAGE)
            )
            return first, second

    first, second = asyncio.run(go())
    assert first.data is None and first.delivered == []
    assert second.delivered == ["lezer@example.org"]
    assert "RSET" in smtp_server.commands
    assert smtp_server.mail_inside_mail == 0


def test_temporary_failure_at_data_then_success(smtp_server: TestSmtpServer) -> None:
    smtp_server.faults.data["lezer@example.org"].append("451 4.3.0 try again later")

    async def go() -> tuple[TransactionResult, TransactionResult]:
        async with await SmtpConnection.open(options(smtp_server)) as connection:
            payload = wire_form(MESSAGE)
            first = await connection.send("b@example.org", ["lezer@example.org"], payload)
            second = await connection.send("b@example.org", ["lezer@example.org"], payload)
            return first, second

    first, second = asyncio.run(go())
    assert first.delivered == [] and first.reply_for("lezer@example.org").temporary
    assert second.delivered == ["lezer@example.org"]
    assert smtp_server.mail_inside_mail == 0


def test_421_means_the_connection_is_lost(smtp_server: TestSmtpServer) -> None:
    smtp_server.faults.mail_reply.append("421 4.3.2 shutting down")
    with pytest.raises(SmtpConnectionLost, match=r"421 4\.3\.2 shutting down"):
        send(smtp_server, "lezer@example.org")


def test_dropped_connection_in_data_is_lost(smtp_server: TestSmtpServer) -> None:
    smtp_server.faults.drop_in_data.add("lezer@example.org")
    with pytest.raises(SmtpConnectionLost):
        send(smtp_server, "lezer@example.org")
    assert smtp_server.received == []


def test_a_stalling_server_times_out(smtp_server: TestSmtpServer) -> None:
    smtp_server.hold("lezer@example.org")  # never answered: only the timeout ends the wait
    with pytest.raises(SmtpConnectionLost, match=TIMED_OUT):
        send(smtp_server, "lezer@example.org", timeout=TIMEOUT)


def test_connection_refused_is_a_connect_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(SmtpConnectError, match=f"cannot connect to SMTP server 127.0.0.1:{port}"):
        asyncio.run(SmtpConnection.open(SmtpOptions(host="127.0.0.1", port=port, timeout=5)))


def test_unsafe_addresses_never_reach_the_wire(smtp_server: TestSmtpServer) -> None:
    with pytest.raises(ValueError, match="unsafe address"):
        send(smtp_server, "a@example.org>\r\nRCPT TO:<b@example.org")
    assert smtp_server.commands == []


def test_login() -> None:
    server = TestSmtpServer(credentials=("nieuwsbrief", "geheim")).start()
    try:
        result = send(server, "lezer@example.org", username="nieuwsbrief", password="geheim")
        assert result.delivered == ["lezer@example.org"]
        with pytest.raises(SmtpConnectError, match="SMTP login as 'nieuwsbrief' failed: 535"):
            send(server, "lezer@example.org", username="nieuwsbrief", password="fout")
        with pytest.raises(SmtpConnectError, match="NEWSLETTER_SMTP_PASSWORD is not"):
            send(server, "lezer@example.org", username="nieuwsbrief")
    finally:
        server.stop()


def test_starttls_required_but_not_offered(smtp_server: TestSmtpServer) -> None:
    with pytest.raises(SmtpConnectError, match="does not offer STARTTLS"):
        send(smtp_server, "lezer@example.org", security="starttls")


def test_a_stall_later_in_a_session_times_out_too(smtp_server: TestSmtpServer) -> None:
    # One timer serves every wait of a session: after waits that ended in time it must
    # still fire on the one that does not, after the timeout and not before.
    smtp_server.hold("traag@example.org")  # never answered: only the timeout ends the wait

    async def go() -> tuple[list[TransactionResult], float]:
        results = []
        async with await SmtpConnection.open(options(smtp_server, timeout=TIMEOUT)) as connection:
            for _ in range(3):
                payload = wire_form(MESSAGE)
                results.append(await connection.send("b@example.org", ["a@example.org"], payload))
            started = asyncio.get_running_loop().time()
            with pytest.raises(SmtpConnectionLost, match=TIMED_OUT):
                await connection.send("b@example.org", ["traag@example.org"], wire_form(MESSAGE))
            return results, asyncio.get_running_loop().time() - started

    results, waited = asyncio.run(go())
    assert [result.delivered for result in results] == [["a@example.org"]] * 3
    # Not before the timeout. How much later depends on the machine; that it fired at all,
    # the raises above says (nothing else could end the wait).
    assert waited >= TIMEOUT * 0.9


class _ScriptedServer:
    """A bare TCP server that greets, says what `script` says to each command line, and
    then (with `read_after_data` False) stops reading: for replies and stalls aiosmtpd
    will not produce."""

    def __init__(self, script: Callable[[bytes], bytes], *, read_after_data: bool = True) -> None:
        self.script = script
        self.read_after_data = read_after_data
        self.lines: list[bytes] = []  # every line the client sent
        self.released = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 scripted\r\n")
            for line in lines:
                self.lines.append(line)
                connection.sendall(self.script(line))
                if line.startswith(b"DATA") and not self.read_after_data:
                    # Holds the connection open and reads nothing more, until closed.
                    self.released.wait(PATIENCE_SECONDS)
                    return

    def close(self) -> None:
        self.released.set()
        self.listener.close()


def test_a_reply_that_is_no_smtp_breaks_the_session() -> None:
    def script(line: bytes) -> bytes:
        if line.startswith(b"EHLO"):
            return b"250-scripted\r\n250 PIPELINING\r\n"
        return b"250 ok\r\nHTTP/1.1 400 Bad Request\r\n"

    server = _ScriptedServer(script)
    try:
        with pytest.raises(SmtpConnectionLost, match=r"not an SMTP reply to .*'HTTP/1\.1 400"):
            send(server, "lezer@example.org")
    finally:
        server.close()


def test_a_server_that_stops_reading_times_out_while_sending() -> None:
    def script(line: bytes) -> bytes:
        if line.startswith(b"EHLO"):
            return b"250-scripted\r\n250 PIPELINING\r\n"
        if line.startswith(b"DATA"):
            return b"354 go on\r\n"
        return b"250 ok\r\n"

    server = _ScriptedServer(script, read_after_data=False)
    big = wire_form(MESSAGE + b"x" * 76 * 200_000)  # far more than the socket buffers hold

    async def go() -> None:
        connection = await SmtpConnection.open(options(server, timeout=TIMEOUT))
        try:
            await connection.send("b@example.org", ["lezer@example.org"], big)
        finally:
            await connection.close()

    try:
        with pytest.raises(SmtpConnectionLost, match=TIMED_OUT + " sending"):
            asyncio.run(go())
    finally:
        server.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl tool")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_sessions_carry_messages(security: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    # aiosmtpd: STARTTLS with `tls_context`, TLS from the start with `ssl_context`.
    where = "tls_context" if security == "starttls" else "ssl_context"
    server = TestSmtpServer(**{where: server_context}).start()  # type: ignore[arg-type]
    big = MESSAGE + (b"y" * 76 + b"\r\n") * 3000  # many TLS records
    try:
        context = ssl.create_default_context(cafile=str(cert))
        overrides = {"security": security, "tls_context": context}

        async def go() -> list[TransactionResult]:
            async with await SmtpConnection.open(options(server, **overrides)) as connection:
                return [
                    await connection.send("b@example.org", [address], wire_form(body))
                    for address, body in (("a@example.org", big), ("c@example.org", MESSAGE))
                ]

        results = asyncio.run(go())
    finally:
        server.stop()
    assert [result.delivered for result in results] == [["a@example.org"], ["c@example.org"]]
    assert [received.data.count(b"y" * 76) for received in server.received] == [3000, 0]


def test_a_354_after_refused_recipients_gets_no_body() -> None:
    # The body goes out as soon as the envelope's replies are in, but only when MAIL and
    # a RCPT were accepted: a server that says 354 anyway gets an empty message, then RSET.
    def script(line: bytes) -> bytes:
        if line.startswith(b"EHLO"):
            return b"250-scripted\r\n250 PIPELINING\r\n"
        if line.startswith(b"RCPT"):
            return b"550 5.1.1 no such user\r\n"
        if line.startswith(b"DATA"):
            return b"354 go on\r\n"
        return b"250 ok\r\n"

    server = _ScriptedServer(script)
    try:
        result = send(server, "weg@example.org")
    finally:
        server.close()
    assert result.data is None and result.reply_for("weg@example.org").permanent
    after_data = server.lines[server.lines.index(b"DATA\r\n") + 1 :]
    assert after_data[:2] == [b".\r\n", b"RSET\r\n"]
    assert not any(b"Eerste regel" in line for line in server.lines)


class _Gate:
    """A BodyGate the test opens by hand."""

    def __init__(self) -> None:
        self.is_open = False
        self.error: BaseException | None = None
        self.waited_at = False  # the sender got to the gate: all but the final dot is out
        self._callbacks: list[Callable[[BaseException | None], None]] = []

    def on_open(self, callback: Callable[[BaseException | None], None]) -> None:
        if self.is_open:
            callback(self.error)
        else:
            self.waited_at = True
            self._callbacks.append(callback)

    def open(self, error: BaseException | None = None) -> None:
        self.is_open, self.error = True, error
        for callback in self._callbacks:
            callback(error)

    async def wait(self) -> None:
        self.waited_at = True
        while not self.is_open:
            await asyncio.sleep(0.01)
        if self.error is not None:
            raise self.error


def test_the_message_is_only_accepted_once_its_gate_opens(smtp_server: TestSmtpServer) -> None:
    gate = _Gate()

    async def go() -> tuple[int, TransactionResult]:
        async with await SmtpConnection.open(options(smtp_server)) as connection:
            sending = asyncio.create_task(
                connection.send(
                    "b@example.org", ["lezer@example.org"], wire_form(MESSAGE), gate=gate
                )
            )
            await wait_until_async(lambda: gate.waited_at, what="the sender to reach the gate")
            accepted_before = len(smtp_server.received)
            gate.open()
            return accepted_before, await sending

    accepted_before, result = asyncio.run(go())
    assert accepted_before == 0
    assert result.delivered == ["lezer@example.org"]
    assert [received.recipients for received in smtp_server.received] == [["lezer@example.org"]]
    assert b"\r\n.een regel met een punt\r\n" in smtp_server.received[0].data


def test_a_gate_that_fails_leaves_the_message_unfinished(smtp_server: TestSmtpServer) -> None:
    gate = _Gate()

    async def go() -> TransactionResult:
        async with await SmtpConnection.open(options(smtp_server)) as connection:
            sending = asyncio.create_task(
                connection.send("b@example.org", ["weg@example.org"], wire_form(MESSAGE), gate=gate)
            )
            await wait_until_async(lambda: gate.waited_at, what="the sender to reach the gate")
            gate.open(OSError("could not record the last outcome"))
            with pytest.raises(OSError, match="could not record"):
                await sending
            assert connection.closed
        # The server discarded the unfinished message; a new session works as before.
        async with await SmtpConnection.open(options(smtp_server)) as connection:
            return await connection.send("b@example.org", ["lezer@example.org"], wire_form(MESSAGE))

    result = asyncio.run(go())
    assert result.delivered == ["lezer@example.org"]
    assert [received.recipients for received in smtp_server.received] == [["lezer@example.org"]]


def test_a_payload_not_in_wire_form_is_refused(smtp_server: TestSmtpServer) -> None:
    async def go() -> None:
        async with await SmtpConnection.open(options(smtp_server)) as connection:
            await connection.send("b@example.org", ["lezer@example.org"], MESSAGE)

    with pytest.raises(ValueError, match="not in wire form"):
        asyncio.run(go())
    assert smtp_server.received == []
