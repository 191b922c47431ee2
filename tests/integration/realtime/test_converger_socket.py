"""The Converger socket (``/socket/converger/websocket``): joins, watermark replay as one
``activitySet``, and live pushes carrying the whole activity."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.api import Api
from tests.support.server import Server

from .conftest import bearer, make_cg_world
from .phx import Phx

PATH = "/socket/converger/websocket"
CG = "/api/v1/converger"


async def _post(api: Api, cg: dict[str, Any], **body: Any) -> str:
    return (await api.ok("POST", f"{CG}/conversations/{cg['conv_id']}/activities", json=body,
                         headers=bearer(cg["conv_token"])))["id"]


async def test_join_matrix(server: Server, session: aiohttp.ClientSession, api: Api,
                           cg: dict[str, Any]) -> None:
    sibling = (await api.ok("POST", f"{CG}/conversations", 201, headers=bearer(cg["token"])))
    stranger = await make_cg_world(api)
    topic = f"converger:conversation:{cg['conv_id']}"
    scoped = await Phx.connect(session, server.ws_url, PATH, cg["conv_token"])
    unscoped = await Phx.connect(session, server.ws_url, PATH, cg["token"])
    other = await Phx.connect(session, server.ws_url, PATH, stranger["token"])
    cases = [
        (scoped, topic, None),
        (scoped, f"converger:conversation:{sibling['conversationId']}", "unauthorized"),
        (unscoped, topic, None),
        (unscoped, f"converger:conversation:{sibling['conversationId']}", None),
        (other, topic, "unauthorized"),
        (scoped, f"conversation:{cg['conv_id']}", "unmatched topic"),
        (scoped, "converger:lobby", "invalid_topic"),
        (scoped, "converger:conversation:not-a-uuid", "invalid_topic"),
    ]
    for phx, t, reason in cases:
        r = await phx.join(t)
        if reason is None:
            assert r.payload == {"status": "ok", "response": {}}, (t, r)
        else:
            assert r.payload == {"status": "error", "response": {"reason": reason}}, (t, r)
    for phx in (scoped, unscoped, other):
        await phx.close()


async def test_live_push_is_the_whole_activity(
    server: Server, session: aiohttp.ClientSession, api: Api, cg: dict[str, Any]
) -> None:
    for vsn in ("2.0.0", "1.0.0"):
        phx = await Phx.connect(session, server.ws_url, PATH, cg["conv_token"], vsn=vsn)
        topic = f"converger:conversation:{cg['conv_id']}"
        await phx.join(topic)
        aid = await _post(api, cg, type="event", **{"from": {"id": "ann"}}, text="hi",
                          attachments=[{"contentType": "image/png", "contentUrl": "/x.png"}],
                          channelData={"lang": "en"})
        f = await phx.expect(lambda f: f.event == "activitySet")
        assert f.topic == topic and f.ref is None
        (a,) = f.payload["activities"]
        assert a == {"id": aid, "type": "event", "from": {"id": "ann"}, "text": "hi",
                     "timestamp": a["timestamp"], "conversationId": cg["conv_id"],
                     "attachments": [{"contentType": "image/png", "contentUrl": "/x.png"}],
                     "channelData": {"lang": "en"}}
        listed = await api.ok("GET", f"{CG}/conversations/{cg['conv_id']}/activities",
                              headers=bearer(cg["conv_token"]))
        assert listed["activities"][-1] == a
        assert f.payload["watermark"] == listed["watermark"]
        # The Converger socket takes no client events.
        r = await phx.push(topic, "new_activity", {"text": "no"})
        assert r.payload["status"] == "error"
        await phx.close()


async def test_watermark_replay_loses_and_duplicates_nothing(
    server: Server, session: aiohttp.ClientSession, api: Api, cg: dict[str, Any]
) -> None:
    topic = f"converger:conversation:{cg['conv_id']}"
    for i in range(3):
        await _post(api, cg, text=f"m{i}")
    phx = await Phx.connect(session, server.ws_url, PATH, cg["conv_token"])
    await phx.join(topic)  # no watermark: no replay
    assert await phx.quiet("activitySet", 0.2)
    await _post(api, cg, text="m3")
    live = await phx.expect(lambda f: f.event == "activitySet")
    wm = live.payload["watermark"]
    await phx.close()
    for i in range(4, 9):  # while disconnected
        await _post(api, cg, text=f"m{i}")
    phx = await Phx.connect(session, server.ws_url, PATH, cg["conv_token"])
    assert (await phx.join(topic, {"watermark": wm})).payload["status"] == "ok"
    await _post(api, cg, text="m9")
    replay = await phx.expect(lambda f: f.event == "activitySet")
    assert [a["text"] for a in replay.payload["activities"]] == [f"m{i}" for i in range(4, 9)]
    nxt = await phx.expect(lambda f: f.event == "activitySet")
    assert [a["text"] for a in nxt.payload["activities"]] == ["m9"]
    assert await phx.quiet("activitySet", 0.2)
    await phx.close()
    # The streamUrl's watermark is the replay point when the join names none.
    shown = await api.ok("GET", f"{CG}/conversations/{cg['conv_id']}?watermark={wm}",
                         headers=bearer(cg["token"]))
    ws = await session.ws_connect(shown["streamUrl"])
    phx = Phx(ws, "1.0.0")
    await phx.join(topic)
    replay = await phx.expect(lambda f: f.event == "activitySet")
    assert [a["text"] for a in replay.payload["activities"]] == [f"m{i}" for i in range(4, 10)]
    await phx.close()


async def test_reconnecting_by_watermark_while_others_post_sees_every_activity_once(
    server: Server, session: aiohttp.ClientSession, api: Api, cg: dict[str, Any]
) -> None:
    import asyncio

    n = 100
    topic = f"converger:conversation:{cg['conv_id']}"

    async def post_all() -> None:
        sem = asyncio.Semaphore(4)

        async def one(i: int) -> None:
            async with sem:
                await _post(api, cg, text=f"m{i}")

        await asyncio.gather(*(one(i) for i in range(n)))

    posting: asyncio.Future[None] | None = None
    texts: list[str] = []
    wm = None
    rounds = 0
    while len(texts) < n:
        rounds += 1
        assert rounds < 200, texts
        phx = await Phx.connect(session, server.ws_url, PATH, cg["conv_token"])
        await phx.join(topic, {"watermark": wm} if wm else {})
        if posting is None:
            posting = asyncio.ensure_future(post_all())
        for _ in range(5):
            try:
                f = await phx.expect(lambda f: f.event == "activitySet", timeout=2)
            except TimeoutError:
                break
            texts.extend(a["text"] for a in f.payload["activities"])
            wm = f.payload["watermark"]
        await phx.close()
    assert posting is not None
    await posting
    listed = await api.ok("GET", f"{CG}/conversations/{cg['conv_id']}/activities",
                          headers=bearer(cg["conv_token"]))
    assert texts == [a["text"] for a in listed["activities"]]
    assert len(set(texts)) == n
