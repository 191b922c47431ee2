"""Inbound webhooks (reference §7, DESIGN §7/§9): verification, signatures, threading, dedupe,
modes, inactive channels, and no echo back out of the source channel."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.integration.delivery.conftest import deliveries, wait_delivery, webhook_setup
from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api


def signed(secret: str, payload: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"content-type": "application/json", "x-converger-signature": sig}


async def post_inbound(api: Api, channel: dict[str, Any], payload: Any, sign: bool = True,
                       path: str = "inbound") -> tuple[int, Any]:
    if sign:
        body, headers = signed(channel["secret"], payload)
    else:
        body, headers = json.dumps(payload).encode(), {"content-type": "application/json"}
    status, out, _ = await api.call("POST", f"/api/v1/channels/{channel['id']}/{path}", data=body,
                                    headers=headers)
    return status, out


async def test_verification_challenge(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "verify")
    status, body, _ = await dapi.call("GET", f"/api/v1/channels/{s['channel']['id']}/inbound?hub.challenge=x")
    assert (status, body) == (200, "ok")
    status, body, _ = await dapi.call("GET", "/api/v1/channels/00000000-0000-4000-8000-000000000000/inbound")
    assert status == 404 and body["errors"] == {"detail": "Not Found"}
    status, body, _ = await dapi.call("GET", "/api/v1/channels/not-a-uuid/inbound")
    assert status == 400


async def test_signature_missing_invalid_valid(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "sigs")
    ch = s["channel"]
    status, out = await post_inbound(dapi, ch, {"sender": "alice", "text": "unsigned"}, sign=False)
    # New channels refuse unsigned messages (issue 13; the original took them, reference §7.3)…
    assert status == 401 and out["code"] == "signature_required"
    # …unless they opt out explicitly.
    loose = await webhook_setup(dapi, receiver, "sigs-loose", config={"allow_unsigned": True})
    status, _ = await post_inbound(dapi, loose["channel"], {"sender": "alice", "text": "unsigned"},
                                   sign=False)
    assert status == 201
    body = json.dumps({"sender": "alice", "text": "forged"}).encode()
    for bad in ("sha256=" + "0" * 64, "", "garbage"):
        status, out, _ = await dapi.call("POST", f"/api/v1/channels/{ch['id']}/inbound", data=body,
                                         headers={"x-converger-signature": bad})
        assert status == 401 and out["errors"] == {"detail": "Unauthorized"}
        assert out["code"] == "invalid_signature"
    status, out = await post_inbound(dapi, ch, {"sender": "alice", "text": "signed"})
    assert status == 201 and out["status"] == "accepted" and out["activity_id"]


async def test_standard_webhooks_signature_inbound(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "stdsig")
    ch = s["channel"]
    body = json.dumps({"sender": "bob", "text": "hi"})
    stamp = int(time.time())
    from datetime import UTC, datetime

    sig = Webhook(ch["secret"]).sign("msg_1", datetime.fromtimestamp(stamp, UTC), body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(stamp), "webhook-signature": sig}
    status, _, _ = await dapi.call("POST", f"/api/v1/channels/{ch['id']}/inbound", data=body, headers=headers)
    assert status == 201
    headers["webhook-signature"] = "v1,AAAA"
    status, _, _ = await dapi.call("POST", f"/api/v1/channels/{ch['id']}/inbound", data=body, headers=headers)
    assert status == 401


async def test_require_signature_refuses_unsigned(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "strict", config={"require_signature": True})
    status, out = await post_inbound(dapi, s["channel"], {"text": "x"}, sign=False)
    assert status == 401 and out["code"] == "signature_required"
    status, _ = await post_inbound(dapi, s["channel"], {"text": "x"})
    assert status == 201


async def test_threading_by_sender(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "thread", mode="inbound")
    ch = s["channel"]
    _, a1 = await post_inbound(dapi, ch, {"sender": "+111", "text": "one"})
    _, a2 = await post_inbound(dapi, ch, {"from": "+111", "message": "two"})
    _, b1 = await post_inbound(dapi, ch, {"sender": "+222", "body": "other"})
    assert a1["conversation_id"] == a2["conversation_id"] != b1["conversation_id"]
    conv = (await dapi.ok("GET", f"/api/v1/conversations/{a1['conversation_id']}",
                          headers={"x-api-key": s["api_key"]}))["data"]
    assert conv["metadata"] == {"source": "inbound_webhook"} and conv["channel_id"] == ch["id"]
    items = (await dapi.ok("GET", f"/api/v1/conversations/{a1['conversation_id']}/activities",
                           headers={"x-api-key": s["api_key"]}))["data"]
    assert [(i["sender"], i["text"]) for i in items] == [("+111", "one"), ("+111", "two")]
    # An inbound-only channel delivers nothing out.
    assert await deliveries(dapi, activity_id=a1["activity_id"]) == []


async def test_duplicate_message_id_is_ignored(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "dupe", mode="inbound")
    first_status, first = await post_inbound(dapi, s["channel"], {"sender": "c", "text": "x", "message_id": "m-1"})
    again_status, again = await post_inbound(dapi, s["channel"], {"sender": "c", "text": "x", "message_id": "m-1"})
    assert (first_status, again_status) == (201, 200)
    assert again["activity_id"] == first["activity_id"] and again["duplicate"] is True
    items = (await dapi.ok("GET", f"/api/v1/conversations/{first['conversation_id']}/activities",
                           headers={"x-api-key": s["api_key"]}))["data"]
    assert len(items) == 1


async def test_conversation_id_in_body_must_be_the_tenants(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "byid")
    status, out = await post_inbound(dapi, s["channel"], {"text": "x", "conversation_id": s["conversation"]["id"]})
    assert status == 201 and out["conversation_id"] == s["conversation"]["id"]
    status, _ = await post_inbound(dapi, s["channel"], {"text": "x",
                                                        "conversation_id": "00000000-0000-4000-8000-000000000000"})
    assert status == 404


async def test_outbound_only_channel_refuses_messages(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "outonly", mode="outbound")
    status, out = await post_inbound(dapi, s["channel"], {"text": "x"})
    assert status == 400 and out["error"] == "Channel does not accept inbound messages"


async def test_inactive_channel_is_refused(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "asleep")
    await dapi.ok("PATCH", f"/api/admin/channels/{s['channel']['id']}", json={"status": "inactive"},
                  headers=dapi.admin)
    for path in ("inbound", "status"):
        status, out = await post_inbound(dapi, s["channel"], {"text": "x"}, path=path)
        assert status == 400 and out["error"] == "Channel is inactive"
    status, body, _ = await dapi.call("GET", f"/api/v1/channels/{s['channel']['id']}/inbound")
    assert status == 400
    # An inactive channel gets no deliveries either (DESIGN §9, quirk 9).
    a = await dapi.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    assert await deliveries(dapi, activity_id=a["id"]) == []


async def test_inbound_is_not_sent_back_but_routed_targets_get_it(dapi: Api, receiver: Receiver) -> None:
    s = await webhook_setup(dapi, receiver, "source")  # duplex
    tid = s["tenant"]["id"]
    target = await dapi.channel(tid, name="target", type="webhook", config={"url": receiver.url("target")})
    sleeping = await dapi.channel(tid, name="sleeping", type="webhook", status="inactive",
                                  config={"url": receiver.url("sleeping")})
    await dapi.ok("POST", "/api/admin/routing_rules", 201, headers=dapi.admin, json={
        "tenant_id": tid, "name": "fan", "source_channel_id": s["channel"]["id"],
        "target_channel_ids": [target["id"], sleeping["id"]]})
    status, out = await post_inbound(dapi, s["channel"], {"sender": "dana", "text": "in"})
    assert status == 201
    (only,) = await deliveries(dapi, activity_id=out["activity_id"])
    assert only["channel_id"] == target["id"]
    await wait_delivery(dapi, out["activity_id"], lambda d: d["status"] == "sent")
    # A reply in the thread goes out through the source channel (and the target).
    reply = await dapi.post_activity(out["conversation_id"], s["api_key"], text="reply", sender="agent")
    rows = await deliveries(dapi, activity_id=reply["id"])
    assert {r["channel_id"] for r in rows} == {s["channel"]["id"], target["id"]}
    (call,) = await receiver.wait_calls("source", 1)
    assert call.json()["text"] == "reply"
    await receiver.wait_calls("target", 2)
    assert receiver.calls["sleeping"] == []
