"""Tokens in links: random confirmation tokens (stored hashed) and signed subscriber links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Literal

from newsletter.core.config import Settings

LinkPurpose = Literal["unsubscribe", "preferences"]
LINK_PURPOSES: tuple[LinkPurpose, ...] = ("unsubscribe", "preferences")

# secrets.token_urlsafe(32): 32 random bytes are 43 base64url characters.
CONFIRMATION_TOKEN_BYTES = 32
_CONFIRMATION_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# A public id is 16 random bytes (22 characters); a link's MAC is cut to 22 characters
# (132 bits), which no one can guess and which keeps the links short.
PUBLIC_ID_BYTES = 16
MAC_CHARS = 22
_LINK_PART = re.compile(r"[A-Za-z0-9_-]{22}")


def new_confirmation_token() -> tuple[str, str]:
    """A fresh token for a mail, and the hash that is stored in its place."""
    token = secrets.token_urlsafe(CONFIRMATION_TOKEN_BYTES)
    return token, _sha256(token)


def confirmation_token_hash(token: str) -> str | None:
    """The stored hash of `token`, or None when it cannot be one of ours."""
    if not isinstance(token, str) or not _CONFIRMATION_TOKEN.fullmatch(token):
        return None
    return _sha256(token)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("ascii")).hexdigest()


def new_public_id() -> str:
    """A subscriber's random public id, the only id that ever appears in a link."""
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


def _link_mac(secret: str, purpose: LinkPurpose, public_id: str) -> str:
    message = f"{purpose}:{public_id}".encode("ascii")
    digest = hmac.digest(secret.encode("utf-8"), message, "sha256")
    return base64.urlsafe_b64encode(digest).decode("ascii")[:MAC_CHARS]


def link_token(secret: str, purpose: LinkPurpose, public_id: str) -> str:
    """`{public_id}.{mac}`: a link token that never expires and only its subscriber has."""
    return f"{public_id}.{_link_mac(secret, purpose, public_id)}"


def parse_link_token(secret: str, purpose: LinkPurpose, token: str) -> str | None:
    """The public id in a valid link token for `purpose`; None for anything else."""
    if not isinstance(token, str) or len(token) != 2 * MAC_CHARS + 1:
        return None
    public_id, dot, mac = token.partition(".")
    if not dot or not _LINK_PART.fullmatch(public_id) or not _LINK_PART.fullmatch(mac):
        return None
    expected = _link_mac(secret, purpose, public_id)
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii")):
        return None
    return public_id


def unsubscribe_url(settings: Settings, public_id: str) -> str:
    token = link_token(settings.require_secret_key(), "unsubscribe", public_id)
    return f"{settings.site.base_url}/unsubscribe/{token}"


def preferences_url(settings: Settings, public_id: str) -> str:
    token = link_token(settings.require_secret_key(), "preferences", public_id)
    return f"{settings.site.base_url}/preferences/{token}"


def confirm_url(settings: Settings, token: str) -> str:
    return f"{settings.site.base_url}/confirm/{token}"
