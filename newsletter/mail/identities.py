"""Per-message identifiers derived from edition and subscriber: Message-ID and VERP path.

Both are HMACs keyed with the secret key, so a resent copy carries the same Message-ID
(receiving systems fold duplicates) and a bounce's VERP address names its subscriber and
edition without showing anything guessable, and cannot be forged.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

VERP_MAC_CHARS = 16
# The "edition" of a probe (returns/probes.py): editions are numbered from 1, so a probe's
# Message-ID and VERP address can never be taken for a newsletter's.
PROBE_EDITION = 0
_VERP_TOKEN = re.compile(r"(\d{1,10})\.([A-Za-z0-9_-]{22})\.([0-9a-f]{16})")


def _mac(secret: str, message: str) -> str:
    return hmac.digest(secret.encode("utf-8"), message.encode("utf-8"), "sha256").hex()


def message_id(secret: str, *, edition: int, public_id: str, domain: str) -> str:
    """`<N.mac@domain>`: the same for every copy of edition N to one subscriber."""
    return f"<{edition}.{_mac(secret, f'message-id:{edition}:{public_id}')[:24]}@{domain}>"


def verp_address(secret: str, *, return_path: str, edition: int, public_id: str) -> str:
    """`local+N.public_id.mac@domain` for the envelope sender of one message."""
    local, _, domain = return_path.rpartition("@")
    token = f"{edition}.{public_id}.{_mac(secret, f'verp:{edition}:{public_id}')[:VERP_MAC_CHARS]}"
    return f"{local}+{token}@{domain}"


@dataclass(frozen=True)
class VerpIdentity:
    edition: int
    public_id: str


def read_verp_address(secret: str, address: str) -> VerpIdentity | None:
    """The edition and subscriber a VERP address names; None when forged or damaged."""
    local = address.strip().strip("<>").rpartition("@")[0]
    token = local.partition("+")[2]
    match = _VERP_TOKEN.fullmatch(token)
    if match is None:
        return None
    edition, public_id, mac = int(match[1]), match[2], match[3]
    expected = _mac(secret, f"verp:{edition}:{public_id}")[:VERP_MAC_CHARS]
    if not hmac.compare_digest(expected, mac):
        return None
    return VerpIdentity(edition=edition, public_id=public_id)


# What message_id() makes: `<N.mac@domain>`, the mac 24 hex characters.
_MESSAGE_ID = re.compile(r"<(\d{1,10})\.([0-9a-f]{24})@([A-Za-z0-9.-]{1,253})>")


@dataclass(frozen=True)
class MessageIdClaim:
    """A Message-ID shaped like ours: its edition, and a mac still to be checked."""

    edition: int
    value: str


def read_message_id(value: str) -> MessageIdClaim | None:
    """The edition a Message-ID of ours names, or None when it is not shaped like ours.

    The mac cannot be read back to a subscriber: check it against the edition's recipients
    with `message_id_matches`.
    """
    match = _MESSAGE_ID.fullmatch(value.strip())
    if match is None:
        return None
    return MessageIdClaim(edition=int(match[1]), value=match[0])


def message_id_matches(secret: str, value: str, *, edition: int, public_id: str) -> bool:
    """Whether `value` is the Message-ID of edition N for this subscriber (any domain)."""
    match = _MESSAGE_ID.fullmatch(value.strip())
    if match is None or int(match[1]) != edition:
        return False
    expected = _mac(secret, f"message-id:{edition}:{public_id}")[:24]
    return hmac.compare_digest(expected, match[2])
