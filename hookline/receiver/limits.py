"""Per-Webhook admission limits: source address allow-list and a token-bucket rate limit.

The clock is injected (monotonic seconds), so tests drive time instead of sleeping.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .config import IPNetwork, Route

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: int  # bucket size
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 if a request may pass now, else the seconds until one may (for Retry-After)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per Webhook, kept across configuration reloads that leave its rate
    alone, so a reload is no way around the limit."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, int, TokenBucket]] = {}

    def check(self, route: Route) -> float:
        """0 to admit; otherwise seconds to wait."""
        if route.rate is None:
            return 0.0
        now = self._clock()
        entry = self._buckets.get(route.key)
        if entry is None or entry[:2] != (route.rate, route.burst):
            bucket = TokenBucket(route.rate, route.burst, float(route.burst), now)
            self._buckets[route.key] = (route.rate, route.burst, bucket)
        else:
            bucket = entry[2]
        return bucket.take(now)

    def forget_except(self, keys: Iterable[str]) -> None:
        """Drop buckets of Webhooks no longer served."""
        keep = set(keys)
        for key in list(self._buckets):
            if key not in keep:
                del self._buckets[key]


def retry_after_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def source_allowed(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 for an IPv4 allow-list
    return any(ip in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[IPNetwork, ...]
) -> str:
    """The caller's address. X-Forwarded-For is believed only from trusted proxies (an
    ingress controller), and then its right-most address that is not itself a trusted
    proxy: the left-most entries are whatever the caller chose to write."""
    address = peer or ""
    if not forwarded_for or not trusted_proxies or not source_allowed(address, trusted_proxies):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # garbage in the chain: stop at the last hop we can vouch for
        if not source_allowed(hop, trusted_proxies):
            return hop
        address = hop
    return address
