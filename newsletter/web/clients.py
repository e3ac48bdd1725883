"""Who is asking: the client's IP address behind trusted proxies, and its rate-limit key.

The peer address of the connection is the client, unless the peer is one of
`[web] trusted_proxies`. Then X-Forwarded-For is read from the right (the hop nearest to
us) and the first address that is not a trusted proxy is the client. Entries left of it
were written by the client itself and prove nothing, so they are never used. When the
header is missing, malformed or names only trusted proxies, the nearest trusted hop is
taken: wrong in a harmless direction (one proxy shares one limit), never spoofable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# An IPv6 customer usually gets a whole /64, so that is what one limit covers.
IPV6_LIMIT_PREFIX = 64


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The `[web] trusted_proxies` entries (addresses or networks) as networks."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def parse_address(value: str | None) -> IPAddress | None:
    """An IP address from a peer or header entry, IPv4-mapped IPv6 as IPv4; else None."""
    if not value:
        return None
    text = value.strip()
    # "[2001:db8::1]:443" and "192.0.2.1:443" appear in some proxies' headers.
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The client's address: the peer, or the last untrusted X-Forwarded-For hop.

    `forwarded_for` holds every X-Forwarded-For header line in order; each may list
    several comma-separated hops.
    """
    nearest = parse_address(peer)
    if nearest is None or not _is_trusted(nearest, trusted):
        return nearest
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        nearest = address
        if not _is_trusted(address, trusted):
            break
    return nearest


def limit_key(address: IPAddress | None, peer: str | None) -> str:
    """The key a client is counted under: its address, or its /64 for IPv6."""
    if address is None:
        # Not an IP peer (a Unix socket, a test client): count them all as one.
        return f"peer:{peer or 'unknown'}"
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_LIMIT_PREFIX), strict=False)
        return str(network)
    return str(address)
