"""Who the client is: the peer, or the last untrusted hop behind trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from newsletter.core.config import Settings
from newsletter.web.clients import client_address, limit_key, parse_address, parse_networks
from tests.support.clock import FixedClock
from tests.support.webharness import csrf_token, web_harness

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8:ffff::1"])


def client(peer: str | None, *forwarded_for: str) -> str | None:
    address = client_address(peer, list(forwarded_for), PROXIES)
    return str(address) if address is not None else None


def test_without_a_trusted_proxy_the_peer_is_the_client() -> None:
    assert client("198.51.100.1") == "198.51.100.1"
    assert client("198.51.100.1", "192.0.2.1") == "198.51.100.1"  # forged header ignored


def test_behind_a_trusted_proxy_the_last_untrusted_hop_is_the_client() -> None:
    assert client("10.0.0.2", "198.51.100.1") == "198.51.100.1"
    # Whatever the client wrote itself stands left of what our proxies added.
    assert client("10.0.0.2", "192.0.2.66, 198.51.100.1") == "198.51.100.1"
    # A chain of our own proxies is walked through.
    assert client("10.0.0.2", "198.51.100.1, 10.0.0.3") == "198.51.100.1"
    # Several header lines are one list.
    assert client("10.0.0.2", "192.0.2.66", "198.51.100.1, 10.1.1.1") == "198.51.100.1"
    assert client("2001:db8:ffff::1", "2001:db8:1::5") == "2001:db8:1::5"


def test_a_missing_or_broken_header_falls_back_to_the_nearest_trusted_hop() -> None:
    assert client("10.0.0.2") == "10.0.0.2"
    assert client("10.0.0.2", "") == "10.0.0.2"
    assert client("10.0.0.2", "unknown") == "10.0.0.2"
    assert client("10.0.0.2", "198.51.100.1, garbage, 10.0.0.3") == "10.0.0.3"
    assert client("10.0.0.2", "10.0.0.9, 10.0.0.3") == "10.0.0.9"


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("198.51.100.1", "198.51.100.1"),
        (" 198.51.100.1 ", "198.51.100.1"),
        ("198.51.100.1:443", "198.51.100.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("testclient", None),
        ("", None),
        (None, None),
        ("999.1.1.1", None),
    ],
)
def test_addresses_are_read_leniently(raw: str | None, parsed: str | None) -> None:
    address = parse_address(raw)
    assert (str(address) if address is not None else None) == parsed


def test_an_ipv6_client_is_limited_by_its_64() -> None:
    assert limit_key(ipaddress.ip_address("2001:db8:1:2::7"), "x") == "2001:db8:1:2::/64"
    assert limit_key(ipaddress.ip_address("198.51.100.1"), "x") == "198.51.100.1"
    assert limit_key(None, "testclient") == "peer:testclient"


@pytest.mark.parametrize(
    ("trusted", "logged"),
    [([], "10.0.0.2"), (["10.0.0.0/8"], "198.51.100.1")],
)
def test_the_consent_log_gets_the_client_address(
    make_settings: Callable[..., Settings],
    clock: FixedClock,
    trusted: list[str],
    logged: str,
) -> None:
    with web_harness(
        make_settings,
        clock,
        web={"trusted_proxies": trusted},
        subscribers={"ip_policy": "store"},
    ) as web:
        browser = web.client(ip="10.0.0.2", headers={"X-Forwarded-For": "198.51.100.1"})
        token = csrf_token(browser.get("/subscribe").text)
        browser.post("/subscribe", data={"csrf_token": token, "email": "ouder@example.org"})
        log = web.people.show("ouder@example.org").consent_log
        assert log[0].ip == logged
