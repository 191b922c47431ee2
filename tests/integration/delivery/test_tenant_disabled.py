"""A tenant that is disabled has no traffic anywhere, and loses nothing: its API key and tokens
are refused, its open sockets close and new ones are refused, its channels' inbound webhooks and
receipts are refused (the original checked only the channel there), and its pending deliveries
are not sent while it is disabled — enabled again, they are, once."""

from __future__ import annotations

import aiohttp

from tests.integration.delivery.conftest import deliveries, wait_delivery, webhook_setup
from tests.integration.delivery.receiver import Receiver
from tests.integration.realtime.conftest import user_token
from tests.integration.realtime.phx import Phx
from tests.support.api import Api
from tests.support.server import Server


async def test_a_disabled_tenant_has_no_traffic_and_its_deliveries_wait(
    dapi: Api, receiver: Receiver, delivery_server: Server, session: aiohttp.ClientSession
) -> None:
    a = await webhook_setup(dapi, receiver, "off-a")
    b = await webhook_setup(dapi, receiver, "off-b")
    a_tenant, a_conv, a_key = a["tenant"]["id"], a["conversation"]["id"], a["api_key"]
    # A's first attempt fails; its retry is due 1 s later (Retry-After 1000 s, scaled 1000×).
    receiver.plan("off-a", (503, {"Retry-After": "1000"}, 0))
    token = await user_token(dapi, a["channel_token"], a_conv)
    phx = await Phx.connect(session, delivery_server.ws_url, "/socket/websocket", token)
    await phx.join(f"conversation:{a_conv}")
    waiting = await dapi.post_activity(a_conv, a_key, text="waits while disabled")
    await wait_delivery(dapi, waiting["id"], lambda d: d["attempts"] == 1)

    await dapi.ok("PATCH", f"/api/admin/tenants/{a_tenant}", headers=dapi.admin,
                  json={"status": "inactive"})

    # Its open socket is closed (1008, policy), and a new one cannot join.
    closing = await phx.ws.receive(timeout=5)
    while closing.type == aiohttp.WSMsgType.TEXT:  # what it was sent before (the activity)
        closing = await phx.ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
    assert closing.type == aiohttp.WSMsgType.CLOSED or closing.data == 1008, closing
    phx = await Phx.connect(session, delivery_server.ws_url, "/socket/websocket", token)
    joined = await phx.join(f"conversation:{a_conv}")
    assert joined.payload == {"status": "error", "response": {"reason": "unauthorized"}}
    await phx.close()
    # Its API key and its channel's token are refused.
    status, body, _ = await dapi.call("POST", f"/api/v1/conversations/{a_conv}/activities",
                                      headers={"x-api-key": a_key}, json={"text": "no"})
    assert status == 401 and body["code"] == "invalid_api_key"
    status, body, _ = await dapi.call("GET", f"/api/v1/conversations/{a_conv}",
                                      headers={"x-channel-token": a["channel_token"]})
    assert status == 401 and body["code"] == "tenant_inactive"
    # Its channels' inbound webhooks and receipts are refused: nothing is stored.
    for path in ("inbound", "status"):
        status, body, _ = await dapi.call(
            "POST", f"/api/v1/channels/{a['channel']['id']}/{path}",
            json={"sender": "someone", "text": "hello?", "delivery_id": "x", "status": "read"})
        assert status == 403 and body["code"] == "tenant_inactive", (path, body)
        assert body["error"] == "Tenant is inactive"
    listed = (await dapi.ok("GET", f"/api/admin/conversations?tenant_id={a_tenant}",
                            headers=dapi.admin))["data"]
    assert [c["id"] for c in listed] == [a_conv]

    # Another tenant's delivery due after A's retry is sent: the workers ran past A's due time
    # (oldest due first) and did not take it.
    receiver.plan("off-b", (503, {"Retry-After": "2000"}, 0))
    later = await dapi.post_activity(b["conversation"]["id"], b["api_key"], text="other tenant")
    await wait_delivery(dapi, later["id"], lambda d: d["status"] == "sent")
    [row] = await deliveries(dapi, activity_id=waiting["id"])
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert len(receiver.calls["off-a"]) == 1

    # Enabled again: what waited is sent now, once, and the tenant works again.
    await dapi.ok("PATCH", f"/api/admin/tenants/{a_tenant}", headers=dapi.admin,
                  json={"status": "active"})
    sent = await wait_delivery(dapi, waiting["id"], lambda d: d["status"] == "sent")
    assert sent["attempts"] == 2 and len(receiver.calls["off-a"]) == 2
    assert receiver.calls["off-a"][1].json()["text"] == "waits while disabled"
    await dapi.post_activity(a_conv, a_key, text="back")
    phx = await Phx.connect(session, delivery_server.ws_url, "/socket/websocket", token)
    joined = await phx.join(f"conversation:{a_conv}")
    assert joined.payload["status"] == "ok"
    await phx.close()
