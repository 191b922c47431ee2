"""Rate limits: the GCRA limiter with an injected clock, and each scope on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.ratelimit import DeliveryLimiter, Limiter
from tests.support.api import Api
from tests.support.server import Server


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_limiter_allows_a_burst_then_paces() -> None:
    clock = Clock()
    lim = Limiter(clock)
    decisions = [lim.hit("k", 10, 60.0) for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    denied = decisions[-1]
    assert denied.retry_after == 6.0 and denied.reset == 60.0
    clock.t += 5.9
    assert not lim.hit("k", 10, 60.0).allowed
    clock.t += 0.1
    assert lim.hit("k", 10, 60.0).allowed  # one slot came back after window/limit
    assert lim.hit("other", 10, 60.0).allowed  # keys are independent
    clock.t += 60.0
    assert all(lim.hit("k", 10, 60.0).allowed for _ in range(10))


def test_limiter_forgets_idle_keys() -> None:
    clock = Clock()
    lim = Limiter(clock)
    for i in range(100):
        lim.hit(f"k{i}", 10, 60.0)
    clock.t += 3600
    lim.hit("fresh", 10, 60.0)
    assert len(lim) == 1


def test_delivery_limiter_paces_per_channel() -> None:
    clock = Clock()
    lim = DeliveryLimiter(5, clock)
    delays = [lim.acquire("c1") for _ in range(10)]
    assert delays[:5] == [0.0] * 5  # one second's burst
    assert all(
        abs(a - b) < 1e-9 for a, b in zip(delays[5:], [0.2, 0.4, 0.6, 0.8, 1.0], strict=True))
    assert lim.acquire("c2") == 0.0
    assert DeliveryLimiter(0, clock).acquire("c1") == 0.0


async def test_token_endpoint_is_limited_per_ip(make_server: Callable[..., Server], session) -> None:
    srv = make_server(env={"CONVERGER_RATE_LIMIT_TOKENS": "10"})
    api = Api(session, srv.url)
    s = await api.setup("rl")
    body = {"conversation_id": s["conversation"]["id"], "user_id": "u1"}
    for _ in range(10):
        status, _, headers = await api.call("POST", "/api/v1/tokens", json=body,
                                            headers={"x-channel-token": s["channel_token"]})
        assert status == 201
        assert headers["RateLimit-Policy"] == '"token_create";q=10;w=60'
    status, body429, headers = await api.call("POST", "/api/v1/tokens", json=body,
                                              headers={"x-channel-token": s["channel_token"]})
    assert status == 429
    assert headers["content-type"] == "application/problem+json"
    assert body429["error"] == "Too many requests. Please try again later."
    assert body429["code"] == "rate_limited" and body429["status"] == 429
    assert 1 <= int(headers["Retry-After"]) <= 6
    assert headers["RateLimit"].startswith('"token_create";r=0;t=')
    assert headers["RateLimit-Policy"] == '"token_create";q=10;w=60'
    # The limit is checked before anything else: even a request without a token is refused.
    status, _, _ = await api.call("POST", "/api/v1/tokens", json={})
    assert status == 429


async def _stored(api: Api, conversation_id: str, api_key: str) -> list[str]:
    """The texts stored in a conversation, in ``seq`` order (read back through the REST API)."""
    body = await api.ok("GET", f"/api/v1/conversations/{conversation_id}/activities",
                        headers={"x-api-key": api_key})
    return [a["text"] for a in body["data"]]


async def test_activity_creation_is_limited_per_tenant(make_server, session) -> None:
    """After every 429 nothing was stored: the limit is checked before the write."""
    srv = make_server(env={"CONVERGER_RATE_LIMIT_ACTIVITIES": "5"})
    api = Api(session, srv.url)
    a = await api.setup("tenant-a")
    b = await api.setup("tenant-b")
    cid = a["conversation"]["id"]
    for i in range(5):
        await api.post_activity(cid, a["api_key"], text=f"m{i}")
    for i in range(3):
        status, body, headers = await api.call(
            "POST", f"/api/v1/conversations/{cid}/activities",
            json={"text": f"over{i}"}, headers={"x-api-key": a["api_key"]})
        assert status == 429 and body["error"] == "Too many requests. Please try again later."
        assert int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Policy"] == '"activity_create";q=5;w=60'
    assert await _stored(api, cid, a["api_key"]) == [f"m{i}" for i in range(5)]
    # Another tenant is not affected.
    await api.post_activity(b["conversation"]["id"], b["api_key"], text="fine")


async def test_every_entry_point_stores_nothing_after_a_429(make_server, session) -> None:
    """The tenant's activity limit holds on the Converger API, socket pushes and uploads too,
    and a refused post leaves nothing behind (no activity, no uploaded file)."""
    import json

    import aiohttp

    from tests.integration.realtime.conftest import bearer, make_cg_world, user_token
    from tests.integration.realtime.phx import Phx

    srv = make_server(env={"CONVERGER_RATE_LIMIT_ACTIVITIES": "3"})
    api = Api(session, srv.url)
    cg_path = "/api/v1/converger/conversations/{}/"

    # The Converger API.
    cg = await make_cg_world(api)
    h = bearer(cg["conv_token"])
    statuses = []
    for i in range(5):
        status, _, _ = await api.call("POST", cg_path.format(cg["conv_id"]) + "activities",
                                      json={"type": "message", "text": f"c{i}"}, headers=h)
        statuses.append(status)
    assert statuses == [200, 200, 200, 429, 429]
    assert await _stored(api, cg["conv_id"], cg["api_key"]) == ["c0", "c1", "c2"]

    # Uploads: refused before the file is written.
    up = await make_cg_world(api)
    h = bearer(up["conv_token"])
    statuses = []
    for i in range(5):
        form = aiohttp.FormData()
        form.add_field("file", b"bytes", filename=f"f{i}.txt", content_type="text/plain")
        form.add_field("activity", json.dumps({"text": f"u{i}"}))
        status, body, _ = await api.call("POST", cg_path.format(up["conv_id"]) + "upload",
                                         data=form, headers=h)
        statuses.append(status)
        if status == 429:
            assert body["code"] == "rate_limited"
    assert statuses == [200, 200, 200, 429, 429]
    assert await _stored(api, up["conv_id"], up["api_key"]) == ["u0", "u1", "u2"]
    files = sorted(p.name for p in (srv.data_dir / "uploads" / up["tenant"]["id"]).iterdir())
    assert len(files) == 3 and all(n.split("_", 1)[1] in ("f0.txt", "f1.txt", "f2.txt")
                                   for n in files), files

    # Socket pushes (legacy socket).
    w = await api.setup("socket")
    cid = w["conversation"]["id"]
    token = await user_token(api, w["channel_token"], cid)
    phx = await Phx.connect(session, srv.ws_url, "/socket/websocket", token)
    try:
        topic = f"conversation:{cid}"
        joined = await phx.join(topic)
        replies = []
        for i in range(5):
            r = await phx.push(topic, "new_activity", {"text": f"s{i}"}, joined.join_ref)
            replies.append((r.payload["status"], r.payload["response"].get("reason")))
        assert replies == [("ok", None)] * 3 + [("error", "rate_limited")] * 2
    finally:
        await phx.close()
    assert await _stored(api, cid, w["api_key"]) == ["s0", "s1", "s2"]


async def test_limits_can_be_disabled(make_server, session) -> None:
    """With both limits at 0, far more than the tests' other limits pass: 40 activities and
    25 token requests from one IP, where the limits above refuse the 6th and the 11th."""
    srv = make_server(env={"CONVERGER_RATE_LIMIT_ACTIVITIES": "0", "CONVERGER_RATE_LIMIT_TOKENS": "0"})
    api = Api(session, srv.url)
    a = await api.setup("free")
    cid = a["conversation"]["id"]
    results = await asyncio.gather(*(
        api.call("POST", f"/api/v1/conversations/{cid}/activities", json={"text": f"m{i}"},
                 headers={"x-api-key": a["api_key"]}) for i in range(40)))
    assert [status for status, _, _ in results] == [201] * 40
    # Off, not merely high: a limited scope names its policy on every allowed answer.
    assert not any("RateLimit-Policy" in headers for _, _, headers in results)
    body = {"conversation_id": cid, "user_id": "u1"}
    for _ in range(25):
        status, _, headers = await api.call("POST", "/api/v1/tokens", json=body,
                                            headers={"x-channel-token": a["channel_token"]})
        assert status == 201 and "RateLimit-Policy" not in headers
    assert len(await _stored(api, cid, a["api_key"])) == 40


async def test_cg_token_scope_shares_one_bucket_per_ip(tmp_path) -> None:
    """The Converger token routes (generate and refresh) share the ``cg_token`` bucket, separate
    from ``token_create``; called here through ``ctx.rate_limit`` as those routes do."""
    from types import SimpleNamespace

    import pytest

    from gateway import config, errors
    from gateway.app import create_app

    app = create_app(config.load({}, data_dir=str(tmp_path), secret_key="k" * 40))

    def request(ip: str) -> SimpleNamespace:
        return SimpleNamespace(ip=ip, headers={}, ctx=SimpleNamespace(), app=app)

    for _ in range(10):
        await app.ctx.rate_limit(request("10.0.0.1"), "cg_token")
    with pytest.raises(errors.ApiError) as exc:
        await app.ctx.rate_limit(request("10.0.0.1"), "cg_token")
    assert exc.value.status == 429 and exc.value.headers["RateLimit-Policy"] == '"cg_token";q=10;w=60'
    await app.ctx.rate_limit(request("10.0.0.1"), "token_create")  # another scope
    await app.ctx.rate_limit(request("10.0.0.2"), "cg_token")  # another client
