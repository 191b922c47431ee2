"""Live pushes of rich conversations on both Phoenix sockets: an inbound image's background
download is pushed as ``attachment_status`` (``pending`` with the error of a failed attempt,
then ``stored`` with its ``contentUrl``) to the legacy and the Converger socket, and a reply's
``delivery_status`` ticks (``sent``, then ``read``) reach the Converger socket too — which the
original dropped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.integration.realtime.phx import Frame, Phx
from tests.integration.whatsapp.conftest import (
    activities,
    delivery_of,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_status_notification
from tests.integration.whatsapp.test_media_in import PNG, image_notification
from tests.support.api import Api
from tests.support.server import Server


async def _sockets(session: aiohttp.ClientSession, server: Server, api: Api,
                   w: dict[str, Any], conv: str) -> tuple[Phx, Phx]:
    """A legacy socket (a user token of the conversation) and a Converger socket (a token of
    the channel, from its secret), both joined to the conversation."""
    channel_token = await api.channel_token(w["channel"]["id"])
    minted = await api.ok("POST", "/api/v1/tokens", 201, headers={"x-channel-token": channel_token},
                          json={"conversation_id": conv, "user_id": "watcher"})
    legacy = await Phx.connect(session, server.ws_url, "/socket/websocket", minted["token"])
    assert (await legacy.join(f"conversation:{conv}")).payload["status"] == "ok"
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate",
                       headers={"authorization": f"Bearer {w['channel']['secret']}"})
    cg = await Phx.connect(session, server.ws_url, "/socket/converger/websocket", gen["token"])
    assert (await cg.join(f"converger:conversation:{conv}")).payload["status"] == "ok"
    return legacy, cg


def _until_stored(seen: list[Frame]) -> Any:
    def pred(f: Frame) -> bool:
        if f.event == "attachment_status":
            seen.append(f)
            return bool(f.payload["status"] == "stored")
        return False
    return pred


async def test_download_and_delivery_status_pushed_to_both_sockets(
        wa_server: Server, wapi: Api, meta: MetaStandIn, session: aiohttp.ClientSession) -> None:
    gate = asyncio.Event()
    meta.add_media("7712", PNG, "image/png", gate=gate, fail_first=1)
    w = await meta_channel(wapi, meta, timeout_seconds=30)  # the gate holds the first attempt
    phone = new_phone()
    status, body = await post_inbound(wapi, w["channel"]["id"], image_notification(phone, "7712"))
    assert status == 201, body
    conv = body["conversation_id"]
    legacy, cg = await _sockets(session, wa_server, wapi, w, conv)
    try:
        [act] = await activities(wapi, w["api_key"], conv)
        assert act["attachments"][0]["status"] == "pending"
    finally:
        gate.set()  # the download may go on now that both sockets listen

    for sock, topic in ((legacy, f"conversation:{conv}"), (cg, f"converger:conversation:{conv}")):
        seen: list[Frame] = []
        await sock.expect(_until_stored(seen), timeout=20)
        assert [f.payload["status"] for f in seen] == ["pending", "stored"], seen
        assert all(f.topic == topic for f in seen)
        retry, stored = seen[0].payload, seen[1].payload
        assert "returned 503" in retry["error"] and retry["attempts"] == 1
        assert stored["activity_id"] == act["id"] and stored["index"] == 0
        assert stored["attempts"] == 2 and stored["error"] is None
        att = stored["attachment"]
        assert att["status"] == "stored" and att["size"] == len(PNG) and "error" not in att
        [now] = await activities(wapi, w["api_key"], conv)
        assert now["attachments"][0] == att  # the push says what the activity now reads

    # A reply's ticks reach the Converger socket as delivery_status.
    reply = await wapi.post_activity(conv, w["api_key"], text="Thanks, got it.", sender="agent")
    await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    status, _ = await post_inbound(wapi, w["channel"]["id"], meta_status_notification(
        meta.sent[0]["id"], "read", phone, str(int(time.time()))))
    assert status == 200
    for sock in (cg, legacy):
        ticks = [f.payload for f in await sock.events("delivery_status", 2)]
        assert [(t["activity_id"], t["status"]) for t in ticks] == [
            (reply["id"], "sent"), (reply["id"], "read")], ticks
    await legacy.close()
    await cg.close()
