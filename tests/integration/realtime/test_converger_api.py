"""The Converger API (``/api/v1/converger``, reference §6) and its bad inputs."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.support.api import Api
from tests.support.server import Server

from .conftest import bearer, make_cg_world

CG = "/api/v1/converger"


async def test_generate_refresh_and_auth_errors(api: Api, cg: dict[str, Any]) -> None:
    gen = await api.ok("POST", f"{CG}/tokens/generate", headers=bearer(cg["secret"]))
    assert gen["conversationId"] is None and gen["expires_in"] == 1800
    # A token is not a secret.
    status, body, _ = await api.call("POST", f"{CG}/tokens/generate", headers=bearer(gen["token"]))
    assert status == 400 and body["error"] == "Token generation requires channel secret, not a token"
    for headers, want in (
        ({}, "Missing or malformed Authorization header"),
        ({"authorization": "Basic abc"}, "Missing or malformed Authorization header"),
        ({"authorization": "bearer " + cg["secret"]}, "Missing or malformed Authorization header"),
        (bearer("whsec_not-a-real-secret"), "Invalid or expired token"),
        (bearer("junk"), "Invalid or expired token"),
    ):
        status, body, _ = await api.call("POST", f"{CG}/tokens/generate", headers=headers)
        assert status == 401, headers
        assert body["error"] == {"code": "Unauthorized", "message": want}
        assert body["code"] and body["status"] == 401
    ref = await api.ok("POST", f"{CG}/tokens/refresh", headers=bearer(cg["conv_token"]))
    assert ref["conversationId"] == cg["conv_id"]
    ref2 = await api.ok("POST", f"{CG}/tokens/refresh", headers=bearer(gen["token"]))
    assert ref2["conversationId"] is None
    # A legacy (non-Converger) token is refused.
    w = await api.setup(name="cg-legacy")
    status, body, _ = await api.call("POST", f"{CG}/tokens/refresh", headers=bearer(w["channel_token"]))
    assert status == 401


async def test_disabled_channel_is_forbidden(api: Api) -> None:
    w = await make_cg_world(api)
    await api.ok("PATCH", f"/api/admin/channels/{w['channel']['id']}", json={"status": "inactive"},
                 headers=api.admin)
    status, body, _ = await api.call("POST", f"{CG}/tokens/refresh", headers=bearer(w["token"]))
    assert status == 403
    assert body["error"] == {"code": "Forbidden", "message": "Channel not found or inactive"}
    status, _, _ = await api.call("POST", f"{CG}/tokens/generate", headers=bearer(w["secret"]))
    assert status == 401  # an inactive channel's secret falls through to token mode


async def test_create_and_show_conversation_stream_url(
    server: Server, api: Api, cg: dict[str, Any]
) -> None:
    conv = cg["conv"]
    assert set(conv) == {"conversationId", "token", "expires_in", "streamUrl"}
    url = urlsplit(conv["streamUrl"])
    assert (url.scheme, url.netloc, url.path) == ("ws", f"127.0.0.1:{server.port}",
                                                  "/socket/converger/websocket")
    q = parse_qs(url.query)
    assert q["token"] == [conv["token"]] and q["conversation_id"] == [cg["conv_id"]]
    wm = "a b&c=d"
    shown = await api.ok("GET", f"{CG}/conversations/{cg['conv_id']}?watermark=a%20b%26c%3Dd",
                         headers=bearer(cg["token"]))
    assert shown["conversationId"] == cg["conv_id"] and shown["token"] != cg["token"]
    assert parse_qs(urlsplit(shown["streamUrl"]).query)["watermark"] == [wm]


async def test_public_url_builds_the_stream_url(fresh_server: Server, session: aiohttp.ClientSession
                                                ) -> None:
    fresh_server.extra_env["CONVERGER_PUBLIC_URL"] = "https://chat.example.com/gw/"
    fresh_server.start()
    api = Api(session, fresh_server.url)
    w = await make_cg_world(api)
    assert w["conv"]["streamUrl"].startswith(
        "wss://chat.example.com/gw/socket/converger/websocket?token=")


async def test_scoping(api: Api, cg: dict[str, Any]) -> None:
    other_conv = await api.ok("POST", f"{CG}/conversations", 201, headers=bearer(cg["token"]))
    stranger = await make_cg_world(api)
    path = f"{CG}/conversations/{other_conv['conversationId']}"
    status, body, _ = await api.call("GET", path, headers=bearer(cg["conv_token"]))
    assert status == 403 and body["errors"] == {"detail": "Forbidden"}
    status, body, _ = await api.call("GET", path, headers=bearer(stranger["token"]))
    assert status == 404 and body["errors"] == {"detail": "Not Found"}
    status, _, _ = await api.call("GET", f"{CG}/conversations/not-a-uuid", headers=bearer(cg["token"]))
    assert status == 400
    for method in ("GET", "POST"):
        status, _, _ = await api.call(method, f"{path}/activities", json={"text": "x"},
                                      headers=bearer(stranger["token"]))
        assert status == 404


async def test_post_and_page_activities_by_watermark(api: Api, cg: dict[str, Any]) -> None:
    path = f"{CG}/conversations/{cg['conv_id']}/activities"
    h = bearer(cg["conv_token"])
    first = await api.ok("POST", path, json={"type": "message", "from": {"id": "ann"},
                                             "text": "one", "channelData": {"k": 1}}, headers=h)
    again = await api.ok("POST", path, json={"text": "ignored"},
                         headers={**h, "x-idempotency-key": "same"})
    dup = await api.ok("POST", path, json={"text": "ignored too"},
                       headers={**h, "x-idempotency-key": "same"})
    assert dup["id"] == again["id"]
    page = await api.ok("GET", path, headers=h)
    assert [a["id"] for a in page["activities"]] == [first["id"], again["id"]]
    a0 = page["activities"][0]
    assert a0 == {"id": first["id"], "type": "message", "from": {"id": "ann"}, "text": "one",
                  "timestamp": a0["timestamp"], "attachments": [], "conversationId": cg["conv_id"],
                  "channelData": {"k": 1}}
    assert page["watermark"] == base64.urlsafe_b64encode(again["id"].encode()).decode().rstrip("=")
    third = await api.ok("POST", path, json={"text": "three", "metadata": {"m": True}}, headers=h)
    nxt = await api.ok("GET", f"{path}?watermark={page['watermark']}", headers=h)
    assert [a["id"] for a in nxt["activities"]] == [third["id"]]
    assert nxt["activities"][0]["channelData"] == {"m": True}
    empty = await api.ok("GET", f"{path}?watermark={nxt['watermark']}", headers=h)
    assert empty == {"activities": [], "watermark": nxt["watermark"]}
    # Unknown or garbage watermarks read from the start, as the original did.
    for wm in ("garbage!!", base64.urlsafe_b64encode(b"not-a-uuid").decode()):
        got = await api.ok("GET", f"{path}?watermark={wm}", headers=h)
        assert len(got["activities"]) == 3


async def test_activity_pages_are_capped(api: Api, cg: dict[str, Any]) -> None:
    import asyncio

    path = f"{CG}/conversations/{cg['conv_id']}/activities"
    h = bearer(cg["conv_token"])
    sem = asyncio.Semaphore(20)

    async def post(i: int) -> None:
        async with sem:
            await api.ok("POST", path, json={"text": str(i)}, headers=h)

    await asyncio.gather(*(post(i) for i in range(520)))
    p1 = await api.ok("GET", path, headers=h)
    assert len(p1["activities"]) == 500
    p2 = await api.ok("GET", f"{path}?watermark={p1['watermark']}", headers=h)
    assert len(p2["activities"]) == 20
    ids = [a["id"] for a in p1["activities"] + p2["activities"]]
    assert len(set(ids)) == 520


async def test_bad_activity_bodies(api: Api, cg: dict[str, Any]) -> None:
    path = f"{CG}/conversations/{cg['conv_id']}/activities"
    h = bearer(cg["conv_token"])
    for body, status in (
        (b"{not json", 400), (b"[1,2]", 400), (b'{"text": 5}', 422), (b'{"from": "x"}', 422),
        (b'{"attachments": [1]}', 422), (b'{"channelData": []}', 422),
    ):
        got, problem, headers = await api.call(
            "POST", path, data=body, headers={**h, "content-type": "application/json"})
        assert got == status, (body, problem)
        assert headers["content-type"].startswith("application/problem+json")
    got, _, _ = await api.call("POST", path, json={"text": "x"},
                               headers={**h, "x-idempotency-key": "k" * 300})
    assert got == 400


