"""Client addresses and IP allowlists (admin pages, ``/metrics``).

``X-Forwarded-For`` is believed only when the connection comes from a trusted proxy
(``CONVERGER_TRUSTED_PROXIES``); otherwise anyone could claim to be 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"127.0.0.1, ::1, 10.0.0.0/8"`` → networks. Bad entries raise ``ValueError``."""
    nets: list[Network] = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return tuple(nets)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:1234"
        text = text[1:text.index("]")]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen through a dual-stack socket (::ffff:127.0.0.1) is that IPv4 client.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_networks(ip: str, networks: tuple[Network, ...]) -> bool:
    """True when ``ip`` lies in one of ``networks``."""
    addr = _address(ip)
    if addr is None:
        return False
    return any(addr.version == n.version and addr in n for n in networks)


def client_ip(request: Any, trusted_proxies: str = "") -> str:
    """The client's address: the peer, or — when the peer is a trusted proxy — the right-most
    ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
    return client_ip_via(request, parse_networks(trusted_proxies) if trusted_proxies else ())


def client_ip_via(request: Any, trusted: tuple[Network, ...]) -> str:
    """:func:`client_ip` with the trusted proxies already parsed."""
    peer = request.ip or ""
    if not trusted or not in_networks(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            return hop if _address(hop) is not None else peer
    return hops[0] if hops and _address(hops[0]) is not None else peer


def admin_allowed(request: Any) -> bool:
    """True when the request's client is on the admin allowlist (``ADMIN_IP_WHITELIST``)."""
    settings = request.app.ctx.settings
    ip = client_ip(request, settings.trusted_proxies)
    return in_networks(ip, parse_networks(settings.admin_ip_whitelist))
