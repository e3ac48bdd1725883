"""Logging in to the SMTP server: which AUTH method, and no password in clear text.

The login talks through the command function it is given; here that is a scripted
server that answers each line as a real one would (the whole session against aiosmtpd
is in test_smtp.py).
"""

from __future__ import annotations

import asyncio
import base64

import pytest

from newsletter.core.errors import SmtpConnectError
from newsletter.mail.smtp import SmtpOptions
from newsletter.mail.smtp_auth import log_in
from newsletter.mail.smtp_protocol import Reply


class ScriptedServer:
    """Answers AUTH as a server would: 334 for each part LOGIN asks, 235 or 535 at the end."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.lines: list[str] = []
        self._login_parts = 0  # parts of an AUTH LOGIN still to come

    async def command(self, line: str) -> Reply:
        self.lines.append(line)
        if line == "AUTH LOGIN":
            self._login_parts = 2
            return Reply(334, "VXNlcm5hbWU6")
        if line.startswith("AUTH PLAIN "):
            password = base64.b64decode(line.split()[2]).split(b"\0")[2].decode()
            return self._verdict(password)
        self._login_parts -= 1
        if self._login_parts:
            return Reply(334, "UGFzc3dvcmQ6")
        return self._verdict(base64.b64decode(line).decode())

    def _verdict(self, password: str) -> Reply:
        if password == self.password:
            return Reply(235, "2.7.0 Authentication successful")
        return Reply(535, "5.7.8 Authentication credentials invalid")


def options(host: str = "127.0.0.1", **kwargs: object) -> SmtpOptions:
    values: dict[str, object] = {"username": "nieuwsbrief", "password": "geheim", **kwargs}
    return SmtpOptions(host=host, port=25, **values)  # type: ignore[arg-type]


def test_plain_when_offered() -> None:
    server = ScriptedServer("geheim")
    asyncio.run(log_in(server.command, options(), ["LOGIN", "PLAIN"]))
    [line] = server.lines
    assert line.startswith("AUTH PLAIN ")
    assert base64.b64decode(line.split()[2]) == b"\0nieuwsbrief\0geheim"


def test_login_when_only_login_is_offered() -> None:
    server = ScriptedServer("geheim")
    asyncio.run(log_in(server.command, options(), ["LOGIN"]))
    assert server.lines == [
        "AUTH LOGIN",
        base64.b64encode(b"nieuwsbrief").decode(),
        base64.b64encode(b"geheim").decode(),
    ]


def test_a_wrong_password_is_a_connect_error_naming_the_user() -> None:
    server = ScriptedServer("anders")
    with pytest.raises(SmtpConnectError, match="SMTP login as 'nieuwsbrief' failed: 535"):
        asyncio.run(log_in(server.command, options(), ["PLAIN"]))


def test_no_method_we_know() -> None:
    server = ScriptedServer("geheim")
    with pytest.raises(SmtpConnectError, match="offers no AUTH method we know"):
        asyncio.run(log_in(server.command, options(), ["CRAM-MD5"]))
    assert server.lines == []


@pytest.mark.parametrize("host", ["smtp.example.org", "192.0.2.25"])
def test_no_password_in_clear_text_to_another_machine(host: str) -> None:
    server = ScriptedServer("geheim")
    with pytest.raises(SmtpConnectError, match="refusing to send the SMTP password unencrypted"):
        asyncio.run(log_in(server.command, options(host), ["PLAIN"]))
    assert server.lines == []


@pytest.mark.parametrize("host", ["smtp.example.org", "192.0.2.25"])
def test_with_tls_the_password_may_go_anywhere(host: str) -> None:
    server = ScriptedServer("geheim")
    asyncio.run(log_in(server.command, options(host, security="starttls"), ["PLAIN"]))
    assert len(server.lines) == 1


def test_a_username_without_password_is_named() -> None:
    server = ScriptedServer("geheim")
    with pytest.raises(SmtpConnectError, match="NEWSLETTER_SMTP_PASSWORD is not"):
        asyncio.run(log_in(server.command, options(password=None), ["PLAIN"]))
