"""SSRF guard: feed URLs come from config files and OPML imports, and redirects come from anybody's server, so
a poll must not reach the machine's own services or the private network behind it.

The check runs where the connection is made, not before the request: `GuardedBackend` (an httpcore network
backend) resolves the host itself, refuses the connection if *any* resolved address is not public, and then
connects to one of the addresses it checked. So every connection is checked (the first request and every
redirect hop, whatever its host), and a DNS answer that changes between a check and the connect (DNS
rebinding) cannot slip through."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpcore

from collectors.netstream import AsyncioBackend

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


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend (by default `collectors.netstream.AsyncioBackend`) behind an address check. TLS still
    verifies the certificate against the host name: httpcore passes the original host as server name after
    the TCP connection is made."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from exc
        refused = [a for a in addresses if not self.policy.allows(a)]
        if refused:
            raise ForbiddenAddress(
                f"{host} resolves to {', '.join(map(str, refused))}: private, loopback or link-local addresses "
                "are not fetched (setting allow_private_addresses)"
            )
        last: Exception | None = None
        for address in addresses:
            left = None if deadline is None else max(deadline - loop.time(), 0.001)
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=left, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:  # try the next address
                last = exc
        assert last is not None  # getaddrinfo never answers with an empty list
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
