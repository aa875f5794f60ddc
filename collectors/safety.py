"""SSRF guard: feed URLs come from config files and OPML imports, and redirects come from anybody's server, so
a poll must not reach the machine's own services or the private network behind it.

The check runs where the connection is made, not before the request: the collector's transport
(`collectors.transport`) resolves the host itself with `resolve`, refuses the connection if *any* resolved
address is not allowed by the `AddressPolicy`, and then connects to one of the addresses it checked. So
every connection is checked (the first request and every redirect hop, whatever its host), and a DNS answer
that changes between a check and the connect (DNS rebinding) cannot slip through."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForbiddenAddress(Exception):
    """The host resolves to an address that feeds may not be fetched from."""


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address. Loopback, private (RFC 1918, ULA), link-local (including
    169.254.169.254, the cloud metadata service), shared (CGNAT), reserved, unspecified and multicast
    addresses are not; an IPv4-mapped IPv6 address is judged by its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses may be fetched from. `allow_private` lifts the guard (tests, a feed server on the
    intranet); `trusted` lifts it for a few networks only."""

    allow_private: bool = False
    trusted: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, allow_private: bool, trusted: Iterable[str] = ()) -> AddressPolicy:
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in trusted))

    def allows(self, address: IPAddress) -> bool:
        if self.allow_private or is_public(address):
            return True
        return any(address.version == net.version and address in net for net in self.trusted)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself), in resolver order, deduplicated.
    Raises `socket.gaierror` when the name does not resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]  # a literal: no resolver round trip
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, IPAddress] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        seen.setdefault(text, ipaddress.ip_address(text))
    return list(seen.values())
