"""The SMTP client against a real aiosmtpd server, with faults switched on per test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from newsletter.errors import SmtpConnectError, SmtpConnectionLost
from newsletter.smtp import SmtpConnection, SmtpOptions, TransactionResult, wire_form
from tests.smtpserver import TestSmtpServer, free_port

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: Hallo\r\n\r\n"
    b"Eerste regel\r\n.een regel met een punt\r\nLaatste regel\r\n"
)


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[TestSmtpServer]:
    server = TestSmtpServer(pipelining=request.param).start()
    yield server
    server.stop()


def options(server: TestSmtpServer, **overrides: object) -> SmtpOptions:
    settings: dict[str, object] = {"host": "127.0.0.1", "port": server.port, "timeout": 5}
    settings.update(overrides)
    return SmtpOptions(**settings)  # type: ignore[arg-type]


def send(server: TestSmtpServer, *recipients: str, **overrides: object) -> TransactionResult:
    async def go() -> TransactionResult:
        async with await SmtpConnection.open(options(server, **overrides)) as connection:
            return await connection.send(
                "bounces@example.org", list(recipients), wire_form(MESSAGE)
            )

    return asyncio.run(go())


def test_wire_form_stuffs_dots_and_ends_the_data() -> None:
    assert wire_form(b"a\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert wire_form(b"x\r\n") == b"x\r\n.\r\n"


def test_message_arrives_intact(smtp_server: TestSmtpServer) -> None:
    result = send(smtp_server, "lezer@example.org")
    assert result.delivered == ["lezer@example.org"]
    [received] = smtp_server.received
    assert received.sender == "bounces@example.org"
    assert received.recipients == ["lezer@example.org"]
    assert b"\r\n.een regel met een punt\r\n" in received.data
    assert smtp_server.mail_inside_mail == 0


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
    smtp_server.faults.stall_in_data["lezer@example.org"] = 3
    with pytest.raises(SmtpConnectionLost, match=r"timed out after 0\.5 s"):
        send(smtp_server, "lezer@example.org", timeout=0.5)


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
