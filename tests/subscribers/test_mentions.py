"""An address in what a mail server wrote back: found and cut out in any case and form."""

from __future__ import annotations

import pytest

from subscribers.mentions import cut_address, names_address

ANOUK = "Anouk.De.Vries@Example.org"


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <anouk.de.vries@example.org>: Recipient address rejected",
        "550 5.1.1 <ANOUK.DE.VRIES@EXAMPLE.ORG>: unknown user",
        "550 5.1.1 Anouk.De.Vries@Example.org... User unknown",
        "550 5.1.1 user unknown: anouk.de.vries@example.org.",
        '550 5.1.1 "Anouk.De.Vries"@example.org: no such user',
        "550 5.7.1 see https://postmaster.example/?rcpt=anouk.de.vries%40example.org",
        "550 5.7.1 see https://postmaster.example/?rcpt=%3Canouk.de.vries%40EXAMPLE.org%3E",
        "550 5.1.1 mailto:anouk.de.vries@example.org unknown",
    ],
)
def test_every_form_a_server_echoes_is_cut_out(reply: str) -> None:
    assert names_address(reply, ANOUK)
    cut = cut_address(reply, ANOUK)
    assert "(address)" in cut
    assert "vries" not in cut.casefold(), cut


@pytest.mark.parametrize(
    ("address", "reply"),
    [
        # An internationalized domain, echoed in IDNA (punycode) or in capitals.
        ("anouk@jeugdzörg.example", "550 <Anouk@xn--jeugdzrg-s4a.example>: unknown"),
        ("anouk@jeugdzörg.example", "550 <ANOUK@JEUGDZÖRG.EXAMPLE>: unknown"),
        ("anouk@xn--jeugdzrg-s4a.example", "550 <anouk@jeugdzörg.example>: unknown"),
        ("anouk@jeugdzörg.example", "550 see /bounce?to=anouk%40jeugdz%C3%B6rg.example"),
        # A local part of its own script (SMTPUTF8), in capitals.
        ("zoë@example.org", "550 <ZOË@EXAMPLE.ORG>: unknown"),
        # A +tag: percent-encoded in a URL, xtext-encoded in a DSN's ORCPT.
        ("anouk+nieuws@example.org", "550 /bounce?to=anouk%2Bnieuws%40example.org"),
        ("anouk+nieuws@example.org", "550 ORCPT=rfc822;Anouk+2Bnieuws@example.org refused"),
    ],
)
def test_encoded_and_international_forms_are_cut_out(address: str, reply: str) -> None:
    assert names_address(reply, address)
    assert cut_address(reply, address).count("(address)") == 1


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <janouk.de.vries@example.org>: unknown",  # someone else's address
        "550 5.1.1 <anouk.de.vries@example.org.uk>: unknown",
        "550 5.1.1 <anouk.de.vries@example.organic>: unknown",
        "550 5.1.1 <x+anouk.de.vries@example.org>: unknown",
        "250 2.0.0 Ok: queued as 4F2B31C0",
    ],
)
def test_other_addresses_are_left_alone(reply: str) -> None:
    assert not names_address(reply, ANOUK)
    assert cut_address(reply, ANOUK) == reply


def test_a_missing_reply_names_no_one() -> None:
    assert not names_address(None, ANOUK)
