"""Outbound HTTP (deliveries, alerts): where the gateway may connect (issue 13, SSRF).

Every URL a tenant or an admin can set (webhook ``url``, ``alert_webhook_url``, Meta,
Telegram and Slack ``api_base_url``, Infobip ``base_url``; channel management actions too)
is fetched through :func:`session`, whose connector checks **the address it is about to connect to**, after resolution, on every new connection —
not the URL at save time, so a name that resolves to a public address when saved and to
``127.0.0.1`` later (DNS rebinding) is still refused. Refused by default: every address that is
not globally routable — loopback, private (RFC 1918, ``fc00::/7``), link-local and cloud
metadata (``169.254.0.0/16``, ``fe80::/10``, ``fd00:ec2::254``), unspecified (``0.0.0.0``,
``::``), shared (``100.64.0.0/10``), reserved, documentation — and multicast; IPv4-mapped IPv6
addresses are judged as the IPv4 address. ``CONVERGER_OUTBOUND_ALLOW`` lists ranges allowed all
the same (on-prem receivers, the test suite's loopback stand-ins).

Redirects are never followed: the adapters ask for none, and the session refuses any that a
request would follow (a 307 would re-send the body and its signature elsewhere).

``CONVERGER_OUTBOUND_HOSTS`` (``name=address,…``) pins names to addresses, like ``/etc/hosts``
or ``curl --resolve``; the pinned address is checked like any other.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from . import ipallow

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Not "global" by the ipaddress tables but named here so the policy reads in one place.
ALWAYS_REFUSED = ipallow.parse_networks("169.254.169.254/32,fd00:ec2::254/128,0.0.0.0/8,::/128")
REFUSED = "destination address not allowed (CONVERGER_OUTBOUND_ALLOW)"


class Refused(OSError):
    """The destination resolves to an address outside the outbound policy."""

    def __init__(self) -> None:
        super().__init__(errno.EACCES, REFUSED)  # strerror: what aiohttp's error shows


def _address(value: str | Address) -> Address | None:
    if not isinstance(value, str):
        addr: Address = value
    else:
        try:
            addr = ipaddress.ip_address(value.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def allowed(address: str | Address, allow: tuple[ipallow.Network, ...] = ()) -> bool:
    """May the gateway connect to ``address``? Listed ranges first, then the default policy:
    globally routable unicast only."""
    addr = _address(address)
    if addr is None:
        return False
    if any(addr.version == n.version and addr in n for n in allow):
        return True
    if any(addr.version == n.version and addr in n for n in ALWAYS_REFUSED):
        return False
    return addr.is_global and not addr.is_multicast


def parse_hosts(spec: str) -> dict[str, str]:
    """``"a.example=192.0.2.1, b.example=::1"`` → {name: address}. Raises ValueError."""
    hosts: dict[str, str] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, address = item.partition("=")
        if not sep or not name.strip() or _address(address.strip()) is None:
            raise ValueError(f"expected name=address, got {item.strip()!r}")
        hosts[name.strip().lower().rstrip(".")] = address.strip()
    return hosts


class GuardedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that connects only to addresses :func:`allowed` lets through. The
    check runs on the resolved addresses of every new connection (IP literals included)."""

    def __init__(self, *, allow: tuple[ipallow.Network, ...] = (),
                 hosts: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self._allow = allow
        self._hosts = hosts or {}

    async def _resolve_host(self, host: str, port: int,
                            traces: Sequence[Any] | None = None) -> list[ResolveResult]:
        pinned = self._hosts.get(host.lower().rstrip("."))
        if pinned is not None:
            addr = _address(pinned)
            assert addr is not None  # parse_hosts checked it
            family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
            found: list[ResolveResult] = [{"hostname": host, "host": str(addr), "port": port,
                                           "family": family, "proto": 0,
                                           "flags": socket.AI_NUMERICHOST}]
        else:
            found = await super()._resolve_host(host, port, traces=traces)
        kept = [r for r in found if allowed(r["host"], self._allow)]
        if not kept:
            raise Refused()
        return kept


class RedirectRefused(aiohttp.ClientError):
    """A delivery answered with a redirect; it is not followed."""

    def __str__(self) -> str:
        return "redirect not followed"


async def _no_redirects(session: Any, ctx: Any, params: Any) -> None:
    raise RedirectRefused()


def session(settings: Any, timeout: aiohttp.ClientTimeout, **connector: Any) -> aiohttp.ClientSession:
    """An HTTP session for deliveries and alerts, under the outbound policy."""
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_no_redirects)
    return aiohttp.ClientSession(
        timeout=timeout, trace_configs=[trace],
        connector=GuardedConnector(allow=ipallow.parse_networks(settings.outbound_allow),
                                   hosts=parse_hosts(settings.outbound_hosts), **connector),
    )


def summary(text: str | None, limit: int = 200) -> str | None:
    """A stored error, short: at most ``limit`` characters on one line."""
    if text is None:
        return None
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"
