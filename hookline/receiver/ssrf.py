"""The SSRF guard on destination addresses (issue 5).

A Webhook author chooses where hookline sends events, so without a guard anyone who
may create a Webhook could make the receiver's pod POST to the cloud metadata service
and read back (in the stored first KiB of the answer) what it says. Refused unless the
Webhook sets ``spec.destinationPolicy.allowLinkLocal``:

- link-local addresses, 169.254.0.0/16 and fe80::/10 (RFC 3927, RFC 4291), where AWS,
  GCP, Azure and OpenStack serve instance metadata (169.254.169.254) and ECS its task
  credentials (169.254.170.2);
- cloud metadata endpoints outside those ranges: fd00:ec2::254 (AWS over IPv6) and
  100.100.100.200 (Alibaba Cloud); and the name metadata.google.internal;
- the same addresses written as IPv4-mapped, IPv4-compatible or NAT64 (64:ff9b::/96)
  IPv6 addresses.

Loopback and private ranges stay allowed: in-cluster Services live there.

Two checks, because aiohttp asks no resolver for a literal IP address:

- `check_url` refuses literal addresses (and the metadata host name) before a request
  is made; `forward.send` runs it on every request;
- `GuardedResolver` wraps the real resolver and refuses a name once it resolves to a
  refused address. The connector then connects to exactly the addresses checked (and
  caches only those), so DNS rebinding between check and connect is not possible.

The allowance is per Webhook, so there are two client sessions, one with a guarded
connector and one without (`ClientSessions.for_destination`). That is simpler than a
resolver reading a per-request flag from a contextvar, and correct where that is not:
aiohttp pools keep-alive connections and caches DNS answers per connector, keyed by
host and port only, so an unguarded request's connection or cached address could be
reused by a guarded request to the same host. Separate connectors share neither.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = [
    "ClientSessions",
    "DestinationRefused",
    "GuardedResolver",
    "check_address",
    "check_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LINK_LOCAL = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_NAMES = frozenset({"metadata.google.internal"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
# What inet_aton(3) takes as an IPv4 address: one to four decimal, octal or hex parts.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
_HINT = "unless the Webhook sets spec.destinationPolicy.allowLinkLocal"


class DestinationRefused(Exception):
    """A destination address the SSRF guard refuses; the message says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # ::a.b.c.d (deprecated IPv4-compatible)
        return ipaddress.IPv4Address(packed)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why `address` is refused, or None when it is allowed."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        bare = ipaddress.IPv6Address(str(address).split("%", 1)[0])  # without a zone id
        candidates = [bare]
        embedded = _embedded_ipv4(bare)
        if embedded is not None:
            candidates.append(embedded)
    for candidate in candidates:
        if candidate in METADATA_ADDRESSES:
            return f"{address} is a cloud metadata endpoint"
        if any(candidate in net for net in _LINK_LOCAL):
            return f"{address} is a link-local address"
    return None


def check_address(address: str, host: str | None = None) -> None:
    """Raise DestinationRefused if the IP `address` (that `host` resolved to) is refused."""
    why = refusal(ipaddress.ip_address(address))
    if why is not None:
        via = f"{host} resolves to {address}: " if host and host != address else ""
        raise DestinationRefused(f"{via}{why}; refused {_HINT}")


def _normal_host(host: str) -> str:
    return host.lower().rstrip(".")


def check_url(url: str, allow_link_local: bool) -> None:
    """Refuse a destination URL whose host is a refused literal address or name.

    Names are checked again after resolution, by `GuardedResolver`. Also refuses
    legacy numeric IPv4 forms (``2852039166``, ``0251.0376.0251.0376``, ``169.254.43518``)
    that the system resolver would map onto an address without any DNS."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused(f"{url!r} is not an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise DestinationRefused(f"{url!r} has no host")
    if allow_link_local:
        return
    name = _normal_host(host)
    if name in METADATA_NAMES:
        raise DestinationRefused(f"{host} is a cloud metadata endpoint; refused {_HINT}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_HOST.match(name):
            raise DestinationRefused(
                f"{host} is not a canonical IP address; write it as a.b.c.d"
            ) from None
        return  # a name: checked once resolved
    why = refusal(address)
    if why is not None:
        raise DestinationRefused(f"{why}; refused {_HINT}")


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's default resolver when None), then refuses the
    name if any of its addresses is refused: a name that points partly at the metadata
    service is not one to send to."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if _normal_host(host) in METADATA_NAMES:
            raise DestinationRefused(f"{host} is a cloud metadata endpoint; refused {_HINT}")
        if self._inner is None:
            # Made here, not in __init__: aiohttp's resolvers need a running loop.
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(result["host"], host)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class ClientSessions:
    """The dispatcher's two HTTP client sessions: guarded, for every Webhook that does
    not allow link-local destinations, and unguarded for those that do.

    Both ignore proxy settings from the environment (a proxy would make the resolver
    check the proxy's address, not the destination's), keep no cookies (a destination
    must not be able to set state seen by another Webhook's request to the same host)
    and are made on first use, inside the running event loop.
    """

    def __init__(
        self,
        resolver: AbstractResolver | None = None,
        *,
        limit: int = 100,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
    ) -> None:
        self._resolver = resolver
        self._limit = limit
        self._trace_configs = trace_configs
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def for_destination(self, allow_link_local: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(allow_link_local)
        if session is None or session.closed:
            resolver: AbstractResolver | None = self._resolver
            if not allow_link_local:
                resolver = GuardedResolver(resolver)
            connector = aiohttp.TCPConnector(limit=self._limit, resolver=resolver)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                trace_configs=self._trace_configs,
            )
            self._sessions[allow_link_local] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
