"""DKIM signatures for newsletters (dkimpy), when [dkim] key_file is set.

The signature covers From, To, Subject, Date, Message-ID, both List-Unsubscribe headers
and the MIME headers, so none can be changed in transit without breaking it; the ones a
reader trusts are signed once more than they occur (oversigned), so that nobody can add
a second From or Subject to a signed mail either. Signing
happens per message (the body differs per recipient); dkimpy does it in Python, which
costs far more than building the message: let the relay sign instead where it can.
"""

from __future__ import annotations

from pathlib import Path

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError

SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
)
# Listed once more in h=: DKIM signs instances from the bottom up, so an extra name
# stands for an instance that must not exist.
OVERSIGNED_HEADERS = (
    b"From",
    b"Subject",
    b"To",
    b"Date",
    b"Message-ID",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
)


class DkimSigner:
    """Signs messages for one domain and selector with one private key."""

    def __init__(self, *, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self._private_key = private_key

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        """The signer [dkim] asks for, or None when signing is off."""
        config = settings.dkim
        if config.key_file is None:
            return None
        path = config.key_file
        if not path.is_absolute():
            path = settings.base_dir / path
        try:
            key = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"dkim.key_file: cannot read {path}: {exc.strerror}") from exc
        return cls(selector=config.selector, domain=config.domain, private_key=key)

    def signature(self, message: bytes) -> bytes:
        """The DKIM-Signature header (with its CRLF) for `message` (CRLF, not stuffed)."""
        # Imported here: dkimpy brings dnspython along, which a send without DKIM (most:
        # the relay signs) would load for nothing before its first message.
        import dkim

        try:
            return bytes(
                dkim.sign(
                    message,
                    self.selector,
                    self.domain,
                    self._private_key,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[*SIGNED_HEADERS, *OVERSIGNED_HEADERS],
                )
            )
        except dkim.DKIMException as exc:
            raise ConfigError(f"dkim: cannot sign with the configured key: {exc}") from exc

    def sign_wire(self, wire: bytes) -> bytes:
        """A message in SMTP wire form (dot-stuffed, ending '.'), signed."""
        message = wire[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
        if message.startswith(b".."):
            message = message[1:]
        return self.signature(message) + wire
