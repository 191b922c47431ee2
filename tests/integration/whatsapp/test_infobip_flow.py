"""Infobip on the real server: incoming messages become activities in the sender's
conversation (once), replies go to the stand-in Infobip API addressed to the sender, delivery
and seen reports advance the delivery, bad payloads and bad keys are refused."""

from __future__ import annotations

import json

from tests.integration.telegram.conftest import health_of
from tests.integration.whatsapp.conftest import (
    activities,
    deliveries,
    delivery_of,
    eventually,
    infobip_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import (
    InfobipStandIn,
    Reply,
    infobip_error,
    infobip_report,
    infobip_text_message,
    sample,
)
from tests.support.api import Api


async def test_message_reply_and_reports(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    cid = w["channel"]["id"]
    frank = new_phone()
    payload = infobip_text_message(frank, "Hi, is my order on its way?")
    status, body = await post_inbound(wapi, cid, payload)
    assert status == 201, body
    conv = body["conversation_id"]
    status, again = await post_inbound(wapi, cid, payload)
    assert status == 200 and again["activity_id"] == body["activity_id"]
    [act] = await activities(wapi, w["api_key"], conv)
    assert (act["sender"], act["text"]) == (frank, "Hi, is my order on its way?")
    assert act["metadata"]["infobip_message_id"] == payload["results"][0]["messageId"]

    reply = await wapi.post_activity(conv, w["api_key"], text="Yes, it ships today", sender="agent")
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    [req] = await infobip.wait_for(1)
    assert req.path == "/whatsapp/1/message/text"
    assert req.headers["Authorization"] == f"App {infobip.api_key}"
    assert req.body == {"from": infobip.sender, "to": frank,
                        "content": {"text": "Yes, it ships today"}}
    message_id = infobip.sent[0]["id"]
    assert d["provider_message_id"] == message_id

    status, body = await post_inbound(wapi, cid, infobip_report(message_id, "DELIVERED", frank))
    assert (status, body) == (200, {"status": "accepted", "receipts_processed": 1})
    await delivery_of(wapi, reply["id"], lambda d: d["status"] == "delivered")
    seen = sample("infobip_seen_report.json")
    seen["results"][0].update(messageId=message_id, to=frank)
    status, body, _ = await wapi.call("POST", f"/api/v1/channels/{cid}/status", json=seen)
    assert (status, body["receipts_processed"]) == (200, 1)
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "read")
    assert d["read_at"].startswith("2026-03-02T12:01:00")


async def test_every_result_of_a_batch(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    status, body = await post_inbound(wapi, w["channel"]["id"], sample("infobip_inbound_mixed.json"))
    assert status == 201, body
    assert len(body["activity_ids"]) == 7
    acts = await activities(wapi, w["api_key"], body["conversation_id"])
    assert [a["attachments"][0]["type"] for a in acts] == ["image", "document", "voice"]


async def test_rejected_report_fails_the_delivery(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    frank = new_phone()
    _, body = await post_inbound(wapi, w["channel"]["id"], infobip_text_message(frank, "hello"))
    reply = await wapi.post_activity(body["conversation_id"], w["api_key"], text="hi", sender="agent")
    await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    report = infobip_report(infobip.sent[0]["id"], "UNDELIVERABLE", frank)
    report["results"][0]["error"] = {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 7020,
                                     "name": "EC_FAILED_OUTSIDE_OF_SESSION_WINDOW",
                                     "description": "Failed outside of session window",
                                     "permanent": True}
    assert (await post_inbound(wapi, w["channel"]["id"], report))[0] == 200
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "failed")
    assert d["last_error"] == "Failed outside of session window"


async def test_provider_errors(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip, api_key="wrong-key")
    _, body = await post_inbound(wapi, w["channel"]["id"], infobip_text_message(new_phone(), "x"))
    reply = await wapi.post_activity(body["conversation_id"], w["api_key"], text="hi", sender="agent")
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "failed")
    assert d["attempts"] == 1 and "Invalid login details" in d["last_error"]

    w = await infobip_channel(wapi, infobip)
    infobip.script += [Reply(503, infobip_error("GENERAL_ERROR", "Service unavailable"))]
    _, body = await post_inbound(wapi, w["channel"]["id"], infobip_text_message(new_phone(), "y"))
    reply = await wapi.post_activity(body["conversation_id"], w["api_key"], text="hi", sender="agent")
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent", timeout=15)
    assert d["attempts"] == 2


async def test_a_revoked_key_marks_the_channel_unhealthy(wapi: Api,
                                                        infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    _, body = await post_inbound(wapi, w["channel"]["id"], infobip_text_message(new_phone(), "x"))
    for _ in range(3):  # a failure rate of 1 in 4 afterwards: "degraded" by itself, not "unhealthy"
        ok = await wapi.post_activity(body["conversation_id"], w["api_key"], text="hi", sender="agent")
        assert (await delivery_of(wapi, ok["id"], lambda d: d["status"] == "sent"))["attempts"] == 1
    health_before = await health_of(wapi, w["channel"]["id"])
    infobip.api_key = "revoked-in-the-portal"  # the channel's key is no longer valid
    reply = await wapi.post_activity(body["conversation_id"], w["api_key"], text="hi", sender="agent")
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "failed")
    assert d["attempts"] == 1 and "Invalid login details" in d["last_error"]
    assert health_before != "unhealthy"
    await eventually(lambda: _unhealthy(wapi, w["channel"]["id"]), "the channel unhealthy")


async def _unhealthy(api: Api, channel_id: str) -> bool:
    return await health_of(api, channel_id) == "unhealthy"


async def test_malformed_or_foreign_payloads_are_400(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    for payload, words in ((sample("meta_inbound_text.json"), "expected an object with a"),
                           ({"results": []}, "no incoming messages"),
                           ({"results": [{"from": "1", "messageId": "x"}]}, "no incoming messages")):
        status, body = await post_inbound(wapi, w["channel"]["id"], payload)
        assert status == 400 and words in json.dumps(body), body
    status, body, _ = await wapi.call("POST", f"/api/v1/channels/{w['channel']['id']}/status",
                                      json=sample("infobip_inbound_text.json"))
    assert status == 400, body
    assert await deliveries(wapi, channel_id=w["channel"]["id"]) == []
