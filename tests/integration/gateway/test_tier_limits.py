"""SLA tier limits applied on the real server (docs/admin.md#sla-tiers): a tenant on a small
tier gets 429 ``rate_limited`` with the usual RateLimit/Retry-After headers (and the tier named)
past its activities per minute, 409 ``tier_limit_reached`` past its channels,
``file_too_large`` past its upload size — while a tenant on no tier keeps the gateway-wide
limits; moving the tenant to another tier applies at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from gateway import tierlimits
from tests.support.api import Api

from .checks import key, problem


async def _tier(api: Api, **limits: int) -> str:
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    await api.ok("POST", "/api/admin/tiers", 201, headers=api.admin, json={"name": name, **limits})
    return name


async def _put(api: Api, tenant_id: str, tier: str | None) -> None:
    await api.ok("PUT", f"/api/admin/tenants/{tenant_id}/tier", headers=api.admin,
                 json={"tier": tier})


async def test_activities_per_minute(api: Api) -> None:
    small = await _tier(api, activities_per_min=3)
    w = await api.setup("tier-small")
    other = await api.setup("tier-none")
    await _put(api, w["tenant"]["id"], small)
    conv = w["conversation"]["id"]
    for i in range(3):
        status, _, headers = await api.call(
            "POST", f"/api/v1/conversations/{conv}/activities", headers=key(w["api_key"]),
            json={"text": f"m{i}"})
        assert status == 201
        assert headers["RateLimit-Policy"] == '"activity_create";q=3;w=60'
    result = await api.call("POST", f"/api/v1/conversations/{conv}/activities",
                            headers=key(w["api_key"]), json={"text": "one too many"})
    body = problem(result, 429, "error", "rate_limited")
    headers = result[2]
    assert body["tier"] == small and small in body["detail"]
    assert headers["RateLimit-Policy"] == '"activity_create";q=3;w=60'
    assert headers["RateLimit"].startswith('"activity_create";r=0;')
    assert 1 <= int(headers["Retry-After"]) <= 20
    # A tenant on no tier: the gateway-wide limit.
    for i in range(5):
        await api.post_activity(other["conversation"]["id"], other["api_key"], text=f"o{i}")
    # Another tier applies at once in the process that made the change (it forgets its cached
    # tiers), in the other worker processes within tierlimits.TTL (`make test-workers` runs
    # this with two): what a client sees is polled for, with a deadline.
    await api.ok("PATCH", f"/api/admin/tiers/{(await _find(api, small))}", headers=api.admin,
                 json={"activities_per_min": None})
    status, body, _ = await _eventually(api, conv, w["api_key"], 201)
    assert status == 201, body  # back under the gateway-wide limit
    await _put(api, w["tenant"]["id"], await _tier(api, activities_per_min=0))
    body = problem(await _eventually(api, conv, w["api_key"], 429), 429, "error", "rate_limited")
    assert "allows 0" in body["detail"]


async def _eventually(api: Api, conv: str, api_key: str, status: int) -> Any:
    """POST activities until one is answered ``status`` (a tier change reaches every worker
    process within tierlimits.TTL seconds); the last answer."""
    deadline = time.monotonic() + 3 * tierlimits.TTL
    while True:
        result = await api.call("POST", f"/api/v1/conversations/{conv}/activities",
                                headers=key(api_key), json={"text": f"expecting {status}"})
        if result[0] == status or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


async def _find(api: Api, name: str) -> str:
    tiers = (await api.ok("GET", "/api/admin/tiers", headers=api.admin))["data"]
    return next(t["id"] for t in tiers if t["name"] == name)


async def test_max_channels(api: Api) -> None:
    w = await api.setup("tier-channels")  # one channel already
    await _put(api, w["tenant"]["id"], await _tier(api, max_channels=2))
    await api.channel(w["tenant"]["id"], name="second")
    body = problem(await api.call("POST", "/api/admin/channels", headers=api.admin, json={
        "tenant_id": w["tenant"]["id"], "name": "third", "type": "websocket"}),
        409, "error", "tier_limit_reached")
    assert "at most 2 channels" in body["detail"]
    await _put(api, w["tenant"]["id"], None)
    await api.channel(w["tenant"]["id"], name="third")


async def test_upload_size(api: Api) -> None:
    t = await api.tenant("tier-uploads")
    c = await api.channel(t["id"], type="websocket")
    await _put(api, t["id"], await _tier(api, max_upload_bytes=10))
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate",
                       headers={"authorization": f"Bearer {c['secret']}"})
    conv = await api.ok("POST", "/api/v1/converger/conversations", 201,
                        headers={"authorization": f"Bearer {gen['token']}"})
    path = f"/api/v1/converger/conversations/{conv['conversationId']}/upload"
    h = {"authorization": f"Bearer {conv['token']}"}

    def form(content: bytes) -> aiohttp.FormData:
        f = aiohttp.FormData()
        f.add_field("file", content, filename="a.txt", content_type="text/plain")
        return f

    problem(await api.call("POST", path, headers=h, data=form(b"x" * 11)), 400, "error",
            "file_too_large")
    await api.ok("POST", path, headers=h, data=form(b"x" * 10))


async def test_sla_targets(api: Api) -> None:
    tiers = {t["name"]: t for t in (await api.ok("GET", "/api/admin/tiers",
                                                 headers=api.admin))["data"]}
    assert tiers["priority"]["target_success_rate"] == 0.99
    assert tiers["priority"]["target_sent_p90_ms"] == 5000
    assert tiers["free"]["target_success_rate"] is None
    name = f"gold-{uuid.uuid4().hex[:8]}"
    made = (await api.ok("POST", "/api/admin/tiers", 201, headers=api.admin, json={
        "name": name, "target_success_rate": 0.999, "target_sent_p90_ms": 1000}))["data"]
    assert (made["target_success_rate"], made["target_sent_p90_ms"]) == (0.999, 1000)
    for body, field in (({"target_success_rate": 1.5}, "target_success_rate"),
                        ({"target_success_rate": -0.1}, "target_success_rate"),
                        ({"target_sent_p90_ms": -1}, "target_sent_p90_ms")):
        got = problem(await api.call("POST", "/api/admin/tiers", headers=api.admin,
                                     json={"name": f"bad-{uuid.uuid4().hex[:6]}", **body}),
                      422, "errors", "validation_failed")
        assert field in got["errors"], got
        problem(await api.call("PATCH", f"/api/admin/tiers/{made['id']}", headers=api.admin,
                               json=body), 422, "errors", "validation_failed")


async def _upgrade(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    """A WebSocket upgrade as a plain GET, to read a refusal's status, headers and body."""
    return await session.get(url.replace("ws://", "http://"), headers={
        "connection": "upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})


async def test_max_connections_for_the_whole_gateway(api: Api, server: Any) -> None:
    """A tier's ``max_connections``: the tenant's sockets are counted in the store, so the cap
    holds whichever worker process each upgrade lands on (`make test-workers`: two; every new
    connection may go to either). Past it: 429 ``too_many_sockets`` with ``Retry-After`` and
    the ``tenant_sockets`` RateLimit headers, the tier named; closing one makes room; a tenant
    on no tier is not capped."""
    # On the tier before anything of the tenant is looked up, so that no process holds it in
    # its tier cache as on none.
    tenant = await api.tenant("tier-sockets")
    await _put(api, tenant["id"], await _tier(api, max_connections=2))
    channel = await api.channel(tenant["id"])
    token = await api.channel_token(channel["id"])
    w = {"channel_token": token, "conversation": await api.conversation(token)}
    other = await api.setup("tier-sockets-free")

    async def url(world: dict[str, Any]) -> str:
        token = (await api.ok("POST", "/api/v1/tokens", 201, json={
            "conversation_id": world["conversation"]["id"], "user_id": f"u-{uuid.uuid4().hex}"},
            headers={"x-channel-token": world["channel_token"]}))["token"]
        return f"{server.ws_url}/socket/websocket?token={token}&vsn=2.0.0"

    held: list[aiohttp.ClientWebSocketResponse] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        try:
            # Two sockets (each its own token and TCP connection), then the third is refused.
            held += [await s.ws_connect(await url(w)) for _ in range(2)]
            r = await _upgrade(s, await url(w))
            assert r.status == 429, r.status
            body = await r.json()
            assert r.content_type == "application/problem+json"
            assert body["code"] == "too_many_sockets" and body["max_connections"] == 2
            assert body["tier"].startswith("tiny-") and "2 open sockets" in body["detail"]
            assert r.headers["RateLimit-Policy"] == '"tenant_sockets";q=2'
            assert r.headers["RateLimit"].startswith('"tenant_sockets";r=0')
            assert int(r.headers["Retry-After"]) >= 1
            # Several more, on whichever process: all refused while two are open.
            for _ in range(4):
                again = await _upgrade(s, await url(w))
                assert again.status == 429
                again.release()
            # A tenant on no tier: not capped by it.
            free = [await s.ws_connect(await url(other)) for _ in range(3)]
            held += free
            # One of the two closed: room for one more (counted down in the store on close).
            await held.pop(0).close()
            deadline = time.monotonic() + 10
            while True:
                try:
                    held.append(await s.ws_connect(await url(w)))
                    break
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 429 and time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            refused = await _upgrade(s, await url(w))
            assert refused.status == 429
            refused.release()
        finally:
            for ws in held:
                await ws.close()
