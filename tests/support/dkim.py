"""DKIM for tests: a key pair made with openssl, a DNS answer for it, the signed headers."""

from __future__ import annotations

import subprocess
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path

SELECTOR = "nieuwsbrief"
DOMAIN = "rvjeugdzorg.nl"


def make_key_pair(folder: Path) -> tuple[Path, bytes]:
    """A new 2048-bit RSA key in `folder`: the private key's file, the public key (DER)."""
    private = folder / "dkim-private.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True
    )
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private, public


def dns_with(public_key: bytes) -> Callable[..., bytes | None]:
    """A DNS lookup for dkimpy that knows only our selector's TXT record."""
    record = b"v=DKIM1; k=rsa; p=" + b64encode(public_key)
    wanted = f"{SELECTOR}._domainkey.{DOMAIN}.".encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == wanted else None

    return lookup


def signed_header_names(message: bytes) -> list[bytes]:
    """The h= list of the message's DKIM-Signature, lower-cased, in order."""
    head = message.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    field = head.lower().split(b"dkim-signature:", 1)[1]
    listed = field.split(b" h=", 1)[1].split(b";", 1)[0]
    return [name.strip() for name in listed.split(b":")]
