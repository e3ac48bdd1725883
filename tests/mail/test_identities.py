"""Message-IDs and VERP addresses: stable, unforgeable, readable back."""

from __future__ import annotations

from newsletter.mail.identities import message_id, read_verp_address, verp_address

SECRET = "test-secret"
PUBLIC_ID = "AbCdEfGhIjKlMnOpQrSt_-"


def test_message_id_is_stable_per_edition_and_subscriber() -> None:
    first = message_id(SECRET, edition=3, public_id=PUBLIC_ID, domain="rvjeugdzorg.nl")
    assert first == message_id(SECRET, edition=3, public_id=PUBLIC_ID, domain="rvjeugdzorg.nl")
    assert first != message_id(SECRET, edition=4, public_id=PUBLIC_ID, domain="rvjeugdzorg.nl")
    assert first.startswith("<3.") and first.endswith("@rvjeugdzorg.nl>")
    assert PUBLIC_ID not in first


def test_verp_round_trip_and_forgery() -> None:
    address = verp_address(
        SECRET, return_path="bounces@rvjeugdzorg.nl", edition=12, public_id=PUBLIC_ID
    )
    assert address.startswith("bounces+12.") and address.endswith("@rvjeugdzorg.nl")
    identity = read_verp_address(SECRET, address)
    assert identity is not None and (identity.edition, identity.public_id) == (12, PUBLIC_ID)
    assert read_verp_address("other-secret", address) is None
    assert read_verp_address(SECRET, address.replace("+12.", "+13.")) is None
    assert read_verp_address(SECRET, address[:-20]) is None
    assert read_verp_address(SECRET, "bounces@rvjeugdzorg.nl") is None
