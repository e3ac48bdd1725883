"""Checking addresses, names and themes; keyed hashes."""

from __future__ import annotations

import pytest

from newsletter.core.config import Settings
from newsletter.core.errors import InvalidInput
from subscribers.addresses import (
    describe_problems,
    keyed_hash,
    normalize_address,
    validate_name,
    validate_themes,
)


@pytest.mark.parametrize(
    ("raw", "email", "key"),
    [
        ("Ouder@Example.ORG", "Ouder@example.org", "ouder@example.org"),
        ("  ouder@example.org\n", "ouder@example.org", "ouder@example.org"),
        ("jose@bücher.de", "jose@bücher.de", "jose@bücher.de"),
        ("Straße@example.org", "Straße@example.org", "strasse@example.org"),
    ],
)
def test_addresses_are_normalized_and_keyed_case_insensitively(
    raw: str, email: str, key: str
) -> None:
    address = normalize_address(raw)
    assert (address.email, address.key) == (email, key)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "required"),
        (" \t ", "required"),
        ("ouder", "invalid"),
        ("ouder@", "invalid"),
        ("@example.org", "invalid"),
        ("ouder@localhost", "invalid"),
        ("Ouder <ouder@example.org>", "invalid"),
        ("ouder@example.org, ander@example.org", "invalid"),
        ("ouder@example.org\r\nBcc: x@example.org", "invalid"),
        ("a@" + ("b" * 60 + ".") * 5 + "org", "too_long"),
    ],
)
def test_bad_addresses_are_refused_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_address(raw)
    assert caught.value.problems == {"email": code}


def test_no_dns_look_up_is_needed() -> None:
    # A domain that does not exist still passes: syntax only, no network.
    assert normalize_address("x@bestaat-niet-9f8e7d.example").email.endswith(".example")


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("  Sanne  ", "Sanne"),
        ("Sanne   de  Vries", "Sanne de Vries"),
        ("Ömer Yıldız-Ç.", "Ömer Yıldız-Ç."),
        ("S" * 100, "S" * 100),
    ],
)
def test_names(raw: str | None, name: str | None) -> None:
    assert validate_name(raw) == name


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("Sanne\r\nBcc: x@example.org", "not_a_name"),
        ("Sanne\n", "not_a_name"),
        ("Sanne\x00", "not_a_name"),
        ("Sanne\u2028Vries", "not_a_name"),
        ("Sanne\u202eseirV", "not_a_name"),
        ("http://spam.example", "not_a_name"),
        ("HTTPS://SPAM.EXAMPLE", "not_a_name"),
        ("WWW.spam.example", "not_a_name"),
        ("<script>", "not_a_name"),
        ("a > b", "not_a_name"),
        ("sanne@example.org", "not_a_name"),
        ("S" * 101, "too_long"),
    ],
)
def test_names_that_are_not_names(raw: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_name(raw)
    assert caught.value.problems == {"name": code}


def test_themes_known_only_deduplicated_in_config_order(settings: Settings) -> None:
    assert validate_themes([], settings) == ()
    assert validate_themes(["doe-je-mee", "opstarten-beweging", "doe-je-mee"], settings) == (
        "opstarten-beweging",
        "doe-je-mee",
    )
    for bad in (["onbekend"], ["Doe je mee?"], "doe-je-mee"):
        with pytest.raises(InvalidInput) as caught:
            validate_themes(bad, settings)
        assert caught.value.problems == {"themes": "unknown"}


def test_keyed_hash_depends_on_the_secret() -> None:
    one = keyed_hash("ouder@example.org", "sleutel-1")
    assert one == keyed_hash("ouder@example.org", "sleutel-1")
    assert one != keyed_hash("ouder@example.org", "sleutel-2")
    assert len(one) == 64 and int(one, 16) >= 0


def test_problems_read_as_one_english_line() -> None:
    assert describe_problems({"email": "invalid", "name": "too_long"}) == (
        "not a valid e-mail address; the name is longer than 100 characters"
    )
