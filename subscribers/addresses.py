"""Checking what people type: addresses, names and themes; keyed hashes of addresses and IPs."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from newsletter.core.config import Settings
from newsletter.core.errors import InvalidInput
from subscribers.models import EMAIL_MAX_CHARS, NAME_MAX_CHARS

# Controls (CR, LF, NUL, ...), the Unicode line and paragraph separators and the
# bidirectional overrides that can make a name read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What spammers put in a sign-up form's name field to carry a link or markup to a stranger.
_NOT_IN_A_NAME = ("<", ">", "://", "www.", "@")


@dataclass(frozen=True)
class Address:
    """A valid address: `email` as stored and shown, `key` for case-insensitive identity."""

    email: str
    key: str


def address_key(email: str) -> str:
    """The identity of a normalized address: the whole address casefolded."""
    return email.casefold()


def mailbox_key(key: str) -> str:
    """The mailbox an address key reaches: without a `+tag` in its local part.

    For the per-mailbox mail limit only (`victim+1@`, `victim+2@` ... are one mailbox at
    most providers); an address's identity stays its whole key.
    """
    local, at, domain = key.rpartition("@")
    if not at:
        return key
    return f"{local.split('+', 1)[0] or local}@{domain}"


def normalize_address(raw: str) -> Address:
    """Check the syntax of `raw` (no DNS) and normalize it, or raise InvalidInput."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput({"email": "required"})
    if len(candidate) > EMAIL_MAX_CHARS:
        raise InvalidInput({"email": "too_long"})
    try:
        validated = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput({"email": "invalid"}) from exc
    email = validated.normalized
    if len(email) > EMAIL_MAX_CHARS:
        raise InvalidInput({"email": "too_long"})
    return Address(email=email, key=address_key(email))


# A dot-atom local part of ASCII letters, digits and the other characters RFC 5322 allows
# there: what email-validator accepts and leaves as it is, whatever the domain.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
LOCAL_PART_MAX_CHARS = 64


class AddressNormalizer:
    """`normalize_address` for the many addresses of one file, with the same results.

    Checking a domain is most of email-validator's work (IDNA rules per character),
    and a list has few domains: a plain local part (ASCII dot-atom) is checked here and
    its domain once, by email-validator; anything else goes to `normalize_address`.
    """

    def __init__(self, *, max_domains: int = 10_000) -> None:
        self._domains: dict[str, str | None] = {}
        self._max_domains = max_domains

    def __call__(self, raw: str) -> Address:
        candidate = raw.strip()
        local, at, domain = candidate.rpartition("@")
        if (
            at
            and len(candidate) <= EMAIL_MAX_CHARS
            and len(local) <= LOCAL_PART_MAX_CHARS
            and _PLAIN_LOCAL_PART.fullmatch(local)
        ):
            normalized = self._domain(domain)
            email = f"{local}@{normalized}"
            if normalized is not None and len(email) <= EMAIL_MAX_CHARS:
                return Address(email=email, key=address_key(email))
        return normalize_address(raw)

    def _domain(self, domain: str) -> str | None:
        """The domain as email-validator normalizes it; None when it refuses it."""
        if domain in self._domains:
            return self._domains[domain]
        try:
            normalized: str | None = validate_email(
                f"a@{domain}", check_deliverability=False
            ).normalized.rpartition("@")[2]
        except EmailNotValidError:
            normalized = None
        if len(self._domains) >= self._max_domains:
            self._domains.clear()
        self._domains[domain] = normalized
        return normalized


def keyed_hash(value: str, secret: str) -> str:
    """HMAC-SHA256 of `value` under the secret key, as hex: safe against guessing."""
    return hmac.digest(secret.encode("utf-8"), value.encode("utf-8"), "sha256").hex()


def validate_name(raw: str | None) -> str | None:
    """An optional name: one line, at most 100 characters, no links, markup or addresses."""
    if raw is None:
        return None
    if _CONTROL.search(raw):
        raise InvalidInput({"name": "not_a_name"})
    name = " ".join(raw.split())
    if not name:
        return None
    if len(name) > NAME_MAX_CHARS:
        raise InvalidInput({"name": "too_long"})
    folded = name.casefold()
    if any(fragment in folded for fragment in _NOT_IN_A_NAME):
        raise InvalidInput({"name": "not_a_name"})
    return name


def unknown_themes(raw: Sequence[str], settings: Settings) -> list[str]:
    """The values in `raw` that are not theme slugs of the settings."""
    return [slug for slug in raw if slug not in settings.themes]


def validate_themes(raw: Sequence[str], settings: Settings) -> tuple[str, ...]:
    """Known theme slugs only, without duplicates, in the order of the settings."""
    if isinstance(raw, str):
        raise InvalidInput({"themes": "unknown"})
    if unknown_themes(raw, settings):
        raise InvalidInput({"themes": "unknown"})
    chosen = set(raw)
    return tuple(slug for slug in settings.themes if slug in chosen)


# English lines for the CLI and the import report; pages say it in Dutch from templates.
_PROBLEM_TEXT: Mapping[tuple[str, str], str] = {
    ("email", "required"): "the e-mail address is missing",
    ("email", "invalid"): "not a valid e-mail address",
    ("email", "too_long"): f"the e-mail address is longer than {EMAIL_MAX_CHARS} characters",
    ("name", "too_long"): f"the name is longer than {NAME_MAX_CHARS} characters",
    ("name", "not_a_name"): "the name holds a line break, link, address or markup",
    ("themes", "unknown"): "unknown theme",
    ("consent_note", "required"): "a consent note is required with --confirmed",
}


def describe_problems(problems: Mapping[str, str]) -> str:
    """One English line for the codes of an InvalidInput."""
    return "; ".join(
        _PROBLEM_TEXT.get((field, code), f"{field}: {code}") for field, code in problems.items()
    )
