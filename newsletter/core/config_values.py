"""The kinds of value in the settings (URLs, addresses, crontabs, time zones), each checked."""

from __future__ import annotations

import zoneinfo
from email.utils import formataddr, parseaddr
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

_ADDRESS_CHARS_FORBIDDEN = frozenset("\r\n\0")


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


def _check_feed_source(value: str) -> str:
    """A feed is an http(s) URL, a file:// URL or a local path."""
    if any(ch in value for ch in _ADDRESS_CHARS_FORBIDDEN) or not value.strip():
        raise ValueError("empty or contains control characters")
    scheme = urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        if not urlsplit(value).hostname:
            raise ValueError(f"URL without a host: {value!r}")
        return value
    if scheme == "file" or scheme == "" or (len(scheme) == 1 and value[1:2] == ":"):
        return value
    raise ValueError(f"unsupported scheme {scheme!r} (use http, https or a file path)")


def _check_mailbox(value: str) -> str:
    """An address with an optional display name: `Name <addr@example.org>` or `addr@...`."""
    if any(ch in value for ch in _ADDRESS_CHARS_FORBIDDEN):
        raise ValueError("contains a line break")
    name, addr = parseaddr(value)
    if not addr or "@" not in addr or addr.startswith("@") or addr.endswith("@"):
        raise ValueError(f"not an e-mail address: {value!r}")
    return formataddr((name, addr)) if name else addr


def _check_address(value: str) -> str:
    """A bare e-mail address, without a display name: `addr@example.org`."""
    if any(ch in value for ch in _ADDRESS_CHARS_FORBIDDEN):
        raise ValueError("contains a line break")
    name, addr = parseaddr(value)
    if (
        name
        or addr != value.strip()
        or "@" not in addr
        or addr.startswith("@")
        or addr.endswith("@")
    ):
        raise ValueError(f"not a bare e-mail address: {value!r}")
    return addr


def _check_crontab(value: str) -> str:
    """Five crontab fields (minute hour day month weekday), as APScheduler reads them."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"not a crontab expression {value!r}: {exc}") from None
    return " ".join(value.split())


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
FeedSource = Annotated[str, AfterValidator(_check_feed_source)]
Mailbox = Annotated[str, AfterValidator(_check_mailbox)]
EmailAddress = Annotated[str, AfterValidator(_check_address)]
Crontab = Annotated[str, AfterValidator(_check_crontab)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
# A host's name as EHLO gives it and a certificate carries it: labels of letters, digits
# and hyphens, separated by dots.
HostName = Annotated[
    str,
    Field(
        max_length=253,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
    ),
]


_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(value: str) -> str | None:
    """The origin (`scheme://host[:port]`, lower case, no default port) of an http(s) URL,
    or None when `value` is not one: how a page's address is compared with the settings."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else "")


def _check_origin(value: str) -> str:
    """A site's origin as browsers send it in `Origin`: `https://www.example.org[:port]`."""
    origin = url_origin(value)
    parts = urlsplit(value.strip())
    if origin is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"not an origin (scheme://host[:port], no path): {value!r}")
    return origin


Origin = Annotated[str, AfterValidator(_check_origin)]
