"""TLS for the connections we open: the system's CAs plus [tls] ca_file, a minimum version."""

from __future__ import annotations

import ssl

import certifi

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError

MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def client_context(settings: Settings) -> ssl.SSLContext:
    """A context that checks the server's certificate and name against the system's CAs
    and the CAs of `[tls] ca_file`, refusing TLS older than `[tls] min_version`."""
    context = ssl.create_default_context()
    context.minimum_version = MIN_VERSIONS[settings.tls.min_version]
    trust_ca_file(context, settings)
    return context


def feed_verification(settings: Settings) -> ssl.SSLContext | bool:
    """How fetching feeds checks certificates: the public CAs as httpx has them (certifi),
    plus those of `[tls] ca_file` when it is set."""
    if settings.tls.ca_file is None:
        return True
    context = ssl.create_default_context(cafile=certifi.where())
    trust_ca_file(context, settings)
    return context


def trust_ca_file(context: ssl.SSLContext, settings: Settings) -> None:
    """Add the CAs of `[tls] ca_file` to `context`; ConfigError naming the file when it
    cannot be read or holds no certificate."""
    if settings.tls.ca_file is None:
        return
    path = settings.resolve_path(settings.tls.ca_file)
    try:
        context.load_verify_locations(cafile=str(path))
    except FileNotFoundError:
        raise ConfigError(f"tls.ca_file: {path} does not exist") from None
    except ssl.SSLError as exc:  # before OSError, of which it is one
        reason = exc.reason or "not PEM"
        raise ConfigError(f"tls.ca_file: {path} holds no usable certificate ({reason})") from exc
    except OSError as exc:
        raise ConfigError(f"tls.ca_file: cannot read {path}: {exc.strerror}") from exc
