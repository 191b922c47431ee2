"""The Direct Line stream: a plain WebSocket at the ``streamUrl``; raw ActivitySets, replay from
the start or after the watermark, then live; empty keep-alive frames both ways; refusals before
the upgrade in Direct Line's error shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import Server

from .conftest import DL, bearer, expired_token, make_dl_world


async def next_set(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    """The next non-empty frame (an ActivitySet); keep-alives are skipped."""
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        if msg.data:
            frame: dict[str, Any] = json.loads(msg.data)
            assert set(frame) == {"activities", "watermark"}
            return frame


async def post(api: Api, w: dict[str, Any], text: str, type: str = "message") -> str:
    body = {"type": type, "text": text, "from": {"id": "u1"}}
    r = await api.ok("POST", f"{DL}/conversations/{w['conv_id']}/activities",
                     headers=bearer(w["token"]), json=body)
    return str(r["id"])


async def test_replay_from_the_start_then_live(api: Api, session: aiohttp.ClientSession) -> None:
    w = await make_dl_world(api)
    await post(api, w, "before")
    await post(api, w, "", type="typing")  # stale by the time the socket opens: not replayed
    async with session.ws_connect(w["conv"]["streamUrl"]) as ws:
        replay = await next_set(ws)
        assert [(a["from"]["id"], a.get("text")) for a in replay["activities"]] == [
            ("u1", "before"), ("bot", "before")]
        a = replay["activities"][0]
        assert a["conversation"] == {"id": w["conv_id"]} and a["from"]["role"] == "user"
        await post(api, w, "", type="typing")
        typing = await next_set(ws)
        assert [x["type"] for x in typing["activities"]] == ["typing"]
        live_id = await post(api, w, "live")
        live = await next_set(ws)
        (one,) = live["activities"]
        assert one["id"] == live_id and one["text"] == "live"
        echo = await next_set(ws)
        assert echo["activities"][0]["from"] == {"id": "bot", "role": "bot"}
        # The stream's watermark pages the polling API too.
        page = await api.ok("GET", f"{DL}/conversations/{w['conv_id']}/activities?watermark="
                            f"{live['watermark']}", headers=bearer(w["token"]))
        assert [x["text"] for x in page["activities"]] == ["live"]


async def test_reconnect_after_the_watermark_repeats_and_misses_nothing(
    api: Api, session: aiohttp.ClientSession
) -> None:
    w = await make_dl_world(api)
    async with session.ws_connect(w["conv"]["streamUrl"]) as ws:
        await post(api, w, "one")
        # The message and its echo: live (one frame each), or in the replay (one frame) when
        # the post committed before the stream subscribed.
        got: list[Any] = []
        while len(got) < 2:
            last = await next_set(ws)
            got += last["activities"]
        assert [x["text"] for x in got] == ["one", "one"]
    await post(api, w, "missed")
    again = await api.ok("GET", f"{DL}/conversations/{w['conv_id']}?watermark={last['watermark']}",
                         headers=bearer(w["secret"]))
    assert f"watermark={last['watermark']}" in again["streamUrl"]
    async with session.ws_connect(again["streamUrl"]) as ws:
        replay = await next_set(ws)
        assert [x["text"] for x in replay["activities"]] == ["missed", "missed"]


@pytest.mark.parametrize("change", ["rotate", "deactivate"])
async def test_a_rotated_or_inactive_channel_refuses_its_earlier_tokens(
        api: Api, session: aiohttp.ClientSession, change: str) -> None:
    """Rotating a channel's secret (or deactivating the channel) revokes the streams of tokens
    issued before, as on the REST routes and the Phoenix sockets."""
    w = await make_dl_world(api)
    url = api.base + f"{DL}/conversations/{w['conv_id']}/stream?t={w['token']}"
    async with session.ws_connect(url):
        pass  # opens before the change
    channel = w["channel"]["id"]
    if change == "rotate":
        await api.ok("POST", f"/api/admin/channels/{channel}/rotate-secret", headers=api.admin)
    else:
        await api.ok("PATCH", f"/api/admin/channels/{channel}", headers=api.admin,
                     json={"status": "inactive"})
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(url)
    assert info.value.status == 403
    async with session.get(url) as r:
        body = await r.json(content_type=None)
        assert r.status == 403 and body["code"] == "token_revoked", body


@pytest.mark.parametrize("case", ["expired", "garbage", "none", "other_conversation",
                                  "foreign_watermark", "bad_watermark", "unknown_conversation"])
async def test_refused_before_the_upgrade(api: Api, session: aiohttp.ClientSession,
                                          case: str) -> None:
    w = await make_dl_world(api)
    other = await make_dl_world(api)
    await post(api, other, "x")
    foreign = (await api.ok("GET", f"{DL}/conversations/{other['conv_id']}/activities",
                            headers=bearer(other["token"])))["watermark"]
    unscoped = (await api.ok("POST", "/api/v1/converger/tokens/generate",
                             headers=bearer(w["secret"])))["token"]
    base = api.base + f"{DL}/conversations/{w['conv_id']}/stream"
    url, status, code = {
        "expired": (f"{base}?t={expired_token(w)}", 403, "TokenExpired"),
        "garbage": (f"{base}?t=a.b.c", 403, "BadArgument"),
        "none": (base, 403, "BadArgument"),
        "other_conversation": (f"{base}?t={other['token']}", 403, "BadArgument"),
        "foreign_watermark": (f"{base}?t={w['token']}&watermark={foreign}", 400, "BadArgument"),
        "bad_watermark": (f"{base}?t={w['token']}&watermark=zz", 400, "BadArgument"),
        # An unscoped token (the Converger API's) reaches its channel's conversations only.
        "unknown_conversation": (api.base + f"{DL}/conversations/{other['conv_id']}/stream"
                                 f"?t={unscoped}", 404, "BadArgument"),
    }[case]
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(url)
    assert info.value.status == status
    async with session.get(url) as r:  # the same refusal, its body readable
        body = await r.json(content_type=None)
        assert r.status == status and body["error"]["code"] == code, body


async def test_keep_alives_both_ways_and_idle_close(make_server: Callable[..., Server],
                                                    session: aiohttp.ClientSession) -> None:
    srv = make_server(env={"CONVERGER_WS_IDLE_TIMEOUT": "2"})
    w = await make_dl_world(Api(session, srv.url))
    async with session.ws_connect(w["conv"]["streamUrl"]) as ws:

        async def ping() -> None:  # the client's keep-alive: empty frames, well inside 2 s
            while True:
                await ws.send_str("")
                await asyncio.sleep(0.2)

        pinger = asyncio.create_task(ping())
        try:
            # Open for twice the idle timeout on the client's frames alone; the server's empty
            # frames come meanwhile (every third of it).
            frames: list[str] = []
            deadline = time.monotonic() + 4.0
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                frames.append(msg.data)
            assert frames and set(frames) == {""} and not ws.closed
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        # Silence closes it, normally.
        msg = await ws.receive(timeout=10)
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000, msg
