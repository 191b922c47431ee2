"""The outbound policy (gateway/outbound.py): which addresses deliveries may reach, checked on
the resolved address at connect time. Names are mapped by a test resolver: packets only ever go
to loopback, and the refusals happen before any connection."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway import ipallow, outbound
from tests.support.serving import serving

LOOPBACK = ipallow.parse_networks("127.0.0.0/8,::1")


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "10.1.2.3", "172.16.0.1", "192.168.1.1",
    "169.254.169.254", "169.254.1.1", "fe80::1", "fd00::1", "fd00:ec2::254", "100.64.0.1",
    "224.0.0.1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "192.0.2.1", "240.0.0.1",
    "255.255.255.255", "not-an-address",
])
def test_refused_by_default(address: str) -> None:
    assert not outbound.allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_allowed(address: str) -> None:
    assert outbound.allowed(address)


def test_allow_list() -> None:
    allow = ipallow.parse_networks("10.0.0.0/8,127.0.0.0/8")
    assert outbound.allowed("10.2.3.4", allow) and outbound.allowed("127.0.0.1", allow)
    assert outbound.allowed("::ffff:10.2.3.4", allow)
    assert not outbound.allowed("192.168.0.1", allow) and not outbound.allowed("169.254.169.254", allow)


def test_parse_hosts() -> None:
    assert outbound.parse_hosts("A.example=10.0.0.1, b=::1") == {"a.example": "10.0.0.1", "b": "::1"}
    for bad in ("a", "a=", "=1.2.3.4", "a=not-ip"):
        with pytest.raises(ValueError):
            outbound.parse_hosts(bad)


class MapResolver(AbstractResolver):
    """Names → a sequence of answers, one per lookup (the last repeats): DNS rebinding."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        seq = self.answers[host]
        addr = seq.pop(0) if len(seq) > 1 else seq[0]
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [{"hostname": host, "host": addr, "port": port, "family": fam, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


def _session(resolver: AbstractResolver | None = None,
             allow: tuple[Any, ...] = ()) -> aiohttp.ClientSession:
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(outbound._no_redirects)
    return aiohttp.ClientSession(
        trace_configs=[trace], timeout=aiohttp.ClientTimeout(total=5),
        connector=outbound.GuardedConnector(allow=allow, resolver=resolver, use_dns_cache=False,
                                            force_close=True))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "169.254.169.254", "0.0.0.0",
                                     "fd00::1", "::1", "::ffff:169.254.169.254"])
async def test_names_resolving_to_refused_ranges_are_not_contacted(address: str) -> None:
    resolver = MapResolver({"target.test": [address]})
    async with _session(resolver) as s:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await s.post("http://target.test/hook", data=b"x")
    assert "not allowed" in str(info.value)
    assert resolver.lookups == ["target.test"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://[::1]:9/", "http://0.0.0.0:9/",
                                 "http://169.254.169.254/latest/meta-data/",
                                 "http://[::ffff:127.0.0.1]:9/"])
async def test_ip_literals_are_checked_too(url: str) -> None:
    async with _session() as s:
        with pytest.raises(aiohttp.ClientConnectorError, match="not allowed"):
            await s.get(url)


async def test_pinned_hosts_are_checked() -> None:
    connector = outbound.GuardedConnector(hosts={"meta.test": "169.254.169.254"})
    async with aiohttp.ClientSession(connector=connector) as s:
        with pytest.raises(aiohttp.ClientConnectorError, match="not allowed"):
            await s.get("http://meta.test/")


async def test_dns_rebinding_is_refused_at_connect_time() -> None:
    hits: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        port = base.rsplit(":", 1)[1]
        # Allowed while it resolves to the (allowed) loopback receiver; refused once it
        # resolves to a private address, without contacting it.
        resolver = MapResolver({"rebind.test": ["127.0.0.1", "10.9.9.9"]})
        async with _session(resolver, allow=LOOPBACK) as s:
            async with s.post(f"http://rebind.test:{port}/hook", data=b"x") as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientConnectorError, match="not allowed"):
                await s.post(f"http://rebind.test:{port}/hook", data=b"x")
    assert hits == ["/hook"]


async def test_redirects_are_never_followed() -> None:
    hits: list[str] = []

    async def hop(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect("/internal")

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="secret")

    app = web.Application()
    app.router.add_post("/hop", hop)
    app.router.add_post("/internal", internal)
    async with serving(app) as base, _session(allow=LOOPBACK) as s:
        with pytest.raises(outbound.RedirectRefused):
            await s.post(base + "/hop", data=b"signed body")
    assert hits == ["/hop"]


def test_summary_is_short_and_one_line() -> None:
    assert outbound.summary("a\nb   c") == "a b c"
    assert len(outbound.summary("x" * 1000) or "") == 200
    assert outbound.summary(None) is None
