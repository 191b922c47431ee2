"""End to end: a WhatsApp user writes in (Meta notification) → a conversation → an agent replies
through the REST API → the reply reaches the stand-in Graph API addressed to that user → Meta
says it was read → the delivery is ``read``, and a socket subscribed to the conversation heard
each ``delivery_status``."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.integration.whatsapp.conftest import (
    IB_KEY,
    IB_SENDER,
    META_TOKEN,
    PNID,
    VERIFY_TOKEN,
    activities,
    delivery_of,
    infobip_channel,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import (
    InfobipStandIn,
    MetaStandIn,
    infobip_text_message,
    meta_status_notification,
    meta_text_notification,
)
from tests.support.api import Api
from tests.support.server import Server

APP_SECRET = "e2e-app-secret"


class Socket:
    """Just enough of a Phoenix Channels v2 client: join a topic, collect its pushes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ref = 0

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, server: Server, token: str) -> Socket:
        query = urlencode({"token": token, "vsn": "2.0.0"})
        return cls(await session.ws_connect(f"{server.ws_url}/socket/websocket?{query}"))

    async def join(self, topic: str) -> Any:
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send_str(json.dumps([ref, ref, topic, "phx_join", {}]))
        frame = await self.expect(lambda f: f[3] == "phx_reply" and f[1] == ref)
        return frame[4]

    async def expect(self, pred: Any, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no matching frame in time"
            msg = await self.ws.receive(timeout=left)
            assert msg.type == aiohttp.WSMsgType.TEXT, f"socket closed: {msg}"
            frame = json.loads(msg.data)
            if pred(frame):
                return frame


async def test_inbound_reply_delivered_read_and_pushed(
    wa_server: Server, wapi: Api, meta: MetaStandIn, session: aiohttp.ClientSession
) -> None:
    w = await meta_channel(wapi, meta)
    cid = w["channel"]["id"]
    sheena = new_phone()

    # 1. Sheena writes in.
    status, body = await post_inbound(wapi, cid, meta_text_notification(sheena, "Is it in blue?"))
    assert status == 201, body
    conv = body["conversation_id"]

    # 2. Somebody watches the conversation on the legacy socket.
    channel_token = await wapi.channel_token(cid)
    minted = await wapi.ok("POST", "/api/v1/tokens", 201, headers={"x-channel-token": channel_token},
                           json={"conversation_id": conv, "user_id": "watcher"})
    socket = await Socket.open(session, wa_server, minted["token"])
    joined = await socket.join(f"conversation:{conv}")
    assert joined["status"] == "ok", joined

    # 3. An agent replies through the REST API; the queue sends it to Meta, to Sheena.
    reply = await wapi.post_activity(conv, w["api_key"], text="Yes, in navy blue.", sender="agent")
    sent = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    [req] = await meta.wait_for(1)
    assert req.body["to"] == sheena and req.body["text"] == {"body": "Yes, in navy blue."}
    assert sent["provider_message_id"] == meta.sent[0]["id"]

    # 4. Meta reports it read.
    status, body = await post_inbound(
        wapi, cid, meta_status_notification(meta.sent[0]["id"], "read", sheena, str(int(time.time()))))
    assert (status, body) == (200, {"status": "accepted", "receipts_processed": 1})
    read = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "read")
    assert read["read_at"]
    acts = await activities(wapi, w["api_key"], conv)
    assert [(a["sender"], a["text"]) for a in acts] == [(sheena, "Is it in blue?"),
                                                        ("agent", "Yes, in navy blue.")]

    # 5. The watcher heard the reply arrive, and the delivery go to "sent" and to "read".
    heard: list[list[Any]] = []

    def collect(f: list[Any]) -> bool:
        heard.append(f)
        return f[3] == "delivery_status" and f[4].get("status") == "read"

    frame = await socket.expect(collect)
    assert any(f[3] == "new_activity" and f[4]["id"] == reply["id"] for f in heard), heard
    assert [f[4]["status"] for f in heard if f[3] == "delivery_status"][-2:] == ["sent", "read"]
    assert frame[2] == f"conversation:{conv}"
    assert frame[4]["delivery_id"] == read["id"] and frame[4]["activity_id"] == reply["id"]
    await socket.ws.close()


async def test_provider_driven_meta_flow(
    wa_server: Server, wapi: Api, session: aiohttp.ClientSession
) -> None:
    """The stand-in plays Meta's part end to end: it verifies the callback URL with the hub
    challenge, posts the customer's message signed with the app secret, answers the send, and
    reports ``sent`` and ``delivered`` on its own; the test adds the customer's ``read``."""
    async with MetaStandIn(token=META_TOKEN, phone_number_id=PNID, app_secret=APP_SECRET) as meta:
        w = await meta_channel(wapi, meta, app_secret=APP_SECRET)
        cid = w["channel"]["id"]
        meta.webhook_url = f"{wa_server.url}/api/v1/channels/{cid}/inbound"
        status, challenge, _ = await wapi.call(
            "GET", f"/api/v1/channels/{cid}/inbound?hub.mode=subscribe"
                   f"&hub.verify_token={VERIFY_TOKEN}&hub.challenge=8675309")
        assert (status, challenge) == (200, "8675309")

        customer = new_phone()
        status, body = await meta.notify(meta_text_notification(customer, "Do you ship to Oslo?"))
        assert status == 201, body
        conv = body["conversation_id"]
        socket = await _watch(wapi, session, wa_server, cid, conv)

        meta.auto_statuses = ["sent", "delivered"]
        reply = await wapi.post_activity(conv, w["api_key"], text="We do.", sender="agent")
        d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "delivered")
        [sent] = meta.sent
        assert sent["to"] == customer and d["provider_message_id"] == sent["id"]
        status, body = await meta.notify(meta.status_payload(sent["id"], "read", customer))
        assert (status, body["receipts_processed"]) == (200, 1)
        await delivery_of(wapi, reply["id"], lambda d: d["status"] == "read")
        await meta.settled()
        assert [c[0] for c in meta.callbacks] == [201, 200, 200, 200]
        await _heard(socket, reply["id"], ["sent", "delivered", "read"])


async def test_provider_driven_infobip_flow(
    wa_server: Server, wapi: Api, session: aiohttp.ClientSession
) -> None:
    """The same with the Infobip stand-in: Basic credentials on its webhooks, a DELIVERED
    report and a seen report of its own after the send."""
    async with InfobipStandIn(api_key=IB_KEY, sender=IB_SENDER, basic=("infobip", "pw")) as ib:
        w = await infobip_channel(wapi, ib, webhook_username="infobip", webhook_password="pw")
        cid = w["channel"]["id"]
        ib.webhook_url = f"{wa_server.url}/api/v1/channels/{cid}/inbound"
        customer = new_phone()
        status, body = await ib.notify(infobip_text_message(customer, "Is it in stock?"))
        assert status == 201, body
        conv = body["conversation_id"]
        socket = await _watch(wapi, session, wa_server, cid, conv)

        ib.auto_statuses = ["DELIVERED", "SEEN"]
        reply = await wapi.post_activity(conv, w["api_key"], text="Yes.", sender="agent")
        d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "read")
        [sent] = ib.sent
        assert sent["to"] == customer and d["provider_message_id"] == sent["id"]
        assert d["delivered_at"] and d["read_at"]
        await ib.settled()
        assert ib.callbacks[1:] == [
            (200, {"status": "accepted", "receipts_processed": 1})] * 2
        await _heard(socket, reply["id"], ["sent", "delivered", "read"])


async def _watch(api: Api, session: aiohttp.ClientSession, server: Server, channel_id: str,
                 conversation_id: str) -> Socket:
    """A socket joined to the conversation's legacy topic."""
    minted = await api.ok("POST", "/api/v1/tokens", 201,
                          headers={"x-channel-token": await api.channel_token(channel_id)},
                          json={"conversation_id": conversation_id, "user_id": "watcher"})
    socket = await Socket.open(session, server, minted["token"])
    assert (await socket.join(f"conversation:{conversation_id}"))["status"] == "ok"
    return socket


async def _heard(socket: Socket, activity_id: str, statuses: list[str]) -> None:
    """The socket got a ``delivery_status`` push for each of ``statuses``, in order."""
    heard: list[str] = []

    def collect(f: list[Any]) -> bool:
        if f[3] == "delivery_status" and f[4]["activity_id"] == activity_id:
            heard.append(f[4]["status"])
        return heard[-1:] == statuses[-1:]

    await socket.expect(collect)
    assert heard == statuses
    await socket.ws.close()
