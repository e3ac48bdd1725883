"""Confirmation tokens and signed subscriber links."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from newsletter.core.config import Settings
from subscribers.tokens import (
    confirm_url,
    confirmation_token_hash,
    link_token,
    new_confirmation_token,
    new_public_id,
    parse_link_token,
    preferences_url,
    unsubscribe_url,
)

SECRET = "geheim"


def test_confirmation_tokens_are_random_and_kept_as_sha256() -> None:
    token, stored = new_confirmation_token()
    assert len(token) == 43 and stored == hashlib.sha256(token.encode()).hexdigest()
    assert confirmation_token_hash(token) == stored
    assert new_confirmation_token()[0] != token


@pytest.mark.parametrize(
    "junk", ["", "a" * 42, "a" * 44, "a" * 42 + "=", "ä" * 43, "a/" * 21 + "a"]
)
def test_junk_is_no_confirmation_token(junk: str) -> None:
    assert confirmation_token_hash(junk) is None


def test_a_link_token_names_its_subscriber() -> None:
    public_id = new_public_id()
    assert len(public_id) == 22
    token = link_token(SECRET, "unsubscribe", public_id)
    assert token.startswith(public_id + ".") and len(token) == 45
    assert parse_link_token(SECRET, "unsubscribe", token) == public_id


def test_a_link_token_is_bound_to_purpose_secret_and_subscriber() -> None:
    mine, theirs = new_public_id(), new_public_id()
    token = link_token(SECRET, "unsubscribe", mine)
    mac = token.split(".")[1]
    assert parse_link_token(SECRET, "preferences", token) is None
    assert parse_link_token("ander-geheim", "unsubscribe", token) is None
    assert parse_link_token(SECRET, "unsubscribe", f"{theirs}.{mac}") is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: ("A" if t[0] != "A" else "B") + t[1:],
        lambda t: t.replace(".", ""),
        lambda t: t.replace(".", "-"),
        lambda t: t + ".",
        lambda t: t.split(".")[0],
        lambda t: "." + t,
        lambda t: t.upper(),
        lambda t: "",
        lambda t: "x" * 100_000,
        lambda t: t[:22] + ".\x00" + t[24:],
    ],
)
def test_mangled_link_tokens_are_refused(mangle: Callable[[str], str]) -> None:
    token = link_token(SECRET, "preferences", new_public_id())
    bad = mangle(token)
    if bad != token:
        assert parse_link_token(SECRET, "preferences", bad) is None


def test_urls_start_at_the_sites_base_url(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(site={"base_url": "https://nieuwsbrief.example.org/"})
    public_id = new_public_id()
    assert unsubscribe_url(settings, public_id).startswith(
        f"https://nieuwsbrief.example.org/unsubscribe/{public_id}."
    )
    assert preferences_url(settings, public_id).startswith(
        f"https://nieuwsbrief.example.org/preferences/{public_id}."
    )
    assert confirm_url(settings, "abc") == "https://nieuwsbrief.example.org/confirm/abc"
