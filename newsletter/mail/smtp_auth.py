"""Logging in to the SMTP server: AUTH PLAIN or LOGIN, and never a password in clear text."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from newsletter.core.errors import SmtpConnectError
from newsletter.mail.smtp_protocol import Reply

if TYPE_CHECKING:
    from newsletter.mail.smtp import SmtpOptions

Command = Callable[[str], Awaitable[Reply]]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def log_in(command: Command, options: SmtpOptions, methods: Sequence[str]) -> None:
    """Log in as `options.username` with one of the AUTH `methods` the server offers.

    Without TLS the password only goes to a server on this machine (loopback).
    """
    if options.security == "none" and not _is_loopback(options.host):
        raise SmtpConnectError(
            f"refusing to send the SMTP password unencrypted to {options.host}; "
            'set [smtp] security = "starttls" or "tls"'
        )
    if options.password is None:
        raise SmtpConnectError("[smtp] username is set but NEWSLETTER_SMTP_PASSWORD is not")
    username, password = options.username or "", options.password
    if "PLAIN" in methods or not methods:
        secret = f"\0{username}\0{password}".encode()
        reply = await command(f"AUTH PLAIN {base64.b64encode(secret).decode()}")
    elif "LOGIN" in methods:
        reply = await command("AUTH LOGIN")
        if reply.code == 334:
            reply = await command(base64.b64encode(username.encode()).decode())
        if reply.code == 334:
            reply = await command(base64.b64encode(password.encode()).decode())
    else:
        raise SmtpConnectError(f"SMTP server offers no AUTH method we know: {list(methods)}")
    if reply.code != 235:
        raise SmtpConnectError(f"SMTP login as {options.username!r} failed: {reply}")
