"""Site address ranges: which addresses a deployment calls internal.

Network detectors need to know which side of a flow is local (a scan *by* a local host
versus backscatter *to* it) and whether a destination is external (exfiltration,
beaconing). The ranges are a deployment setting (``site.internal`` in ``topics.yaml``);
the engine passes them to every detector with an ``internal_networks`` parameter. The
default is RFC 1918, loopback, link-local, carrier-grade NAT, multicast and the limited
broadcast address, and their IPv6 counterparts. Documentation ranges (198.51.100.0/24,
203.0.113.0/24) count as external, unlike :attr:`ipaddress.IPv4Address.is_private`.

>>> is_internal("10.1.2.3", DEFAULT_INTERNAL), is_internal("203.0.113.9", DEFAULT_INTERNAL)
(True, False)
>>> is_internal("239.255.255.250", DEFAULT_INTERNAL)  # SSDP multicast
True
>>> is_multicast_or_broadcast("224.0.0.251"), is_multicast_or_broadcast("10.0.0.255")
(True, True)
>>> subnet_of("10.1.2.3"), subnet_of("2001:db8::1"), subnet_of("not an ip")
('10.1.2.0/24', '2001:db8::/64', '')
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = [
    "DEFAULT_INTERNAL",
    "check_networks",
    "is_internal",
    "is_multicast_or_broadcast",
    "subnet_of",
]

#: Internal by default: RFC 1918, loopback, link-local, carrier-grade NAT, multicast,
#: limited broadcast; IPv6 unique-local, link-local, loopback and multicast.
DEFAULT_INTERNAL: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
    "ff00::/8",
)


@lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def check_networks(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    """Validate CIDRs at configuration time; return them as a tuple.

    >>> check_networks(("10.0.0.0/8",))
    ('10.0.0.0/8',)
    >>> check_networks(("10.0.0.0/33",))
    Traceback (most recent call last):
    ...
    ValueError: invalid network '10.0.0.0/33' in internal_networks
    """
    cidrs = tuple(str(c) for c in cidrs)
    for c in cidrs:
        try:
            ipaddress.ip_network(c, strict=False)
        except ValueError:
            raise ValueError(f"invalid network {c!r} in internal_networks") from None
    return cidrs


# Module-level and bounded: the cache never changes a verdict, so it is not detector
# state, and keeping it out of the instance keeps pickles small and score_one pure.
@lru_cache(maxsize=1 << 16)
def is_internal(ip: str, cidrs: tuple[str, ...]) -> bool:
    """Whether ``ip`` is inside one of ``cidrs`` (False for anything not an address)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in _networks(cidrs) if net.version == addr.version)


@lru_cache(maxsize=1 << 14)
def is_multicast_or_broadcast(ip: str) -> bool:
    """Multicast, limited broadcast, or an IPv4 address ending in .255 (subnet broadcast
    of the usual /24s; a guess, but no unicast host is numbered .255 on a /24)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.is_multicast:
        return True
    return addr.version == 4 and (int(addr) & 0xFF) == 0xFF


@lru_cache(maxsize=1 << 16)
def subnet_of(ip: str) -> str:
    """The peer group of an address: its /24 (IPv4) or /64 (IPv6); '' if not an address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
