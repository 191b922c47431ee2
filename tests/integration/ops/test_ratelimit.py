"""Rate limits, each scope on a real server (the limiter itself, with an injected clock:
tests/unit/gateway/test_ratelimit.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.support.api import Api
from tests.support.server import Server


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


async def test_converger_token_routes_share_one_bucket_per_ip(make_server, session) -> None:
    """``/api/v1/converger/tokens/generate`` and ``/refresh`` share the ``cg_token`` bucket,
    separate from ``POST /api/v1/tokens`` (``token_create``)."""
    srv = make_server(env={"CONVERGER_RATE_LIMIT_TOKENS": "4"})
    api = Api(session, srv.url)
    s = await api.setup("cg-bucket")
    secret = {"authorization": f"Bearer {s['channel']['secret']}"}
    statuses = []
    token = None
    for i in range(5):  # generate, refresh, generate, refresh, refresh: one bucket of 4
        if i % 2 == 0:
            status, body, headers = await api.call("POST", "/api/v1/converger/tokens/generate",
                                                   headers=secret)
        else:
            status, body, headers = await api.call(
                "POST", "/api/v1/converger/tokens/refresh",
                headers={"authorization": f"Bearer {token}"})
        statuses.append(status)
        if status == 200:
            token = body["token"]
            assert headers["RateLimit-Policy"] == '"cg_token";q=4;w=60'
    assert statuses == [200, 200, 200, 200, 429]
    assert body["code"] == "rate_limited"
    # Another scope is not affected.
    await api.ok("POST", "/api/v1/tokens", 201, json={
        "conversation_id": s["conversation"]["id"], "user_id": "u1"},
        headers={"x-channel-token": s["channel_token"]})
