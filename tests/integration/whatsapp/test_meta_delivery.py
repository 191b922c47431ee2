"""Replies through the real queue to the stand-in Graph API: addressed to the person who wrote,
provider message id kept, Meta's statuses advancing the delivery; provider errors fail at once
or retry on the (scaled-down) schedule."""

from __future__ import annotations

from typing import Any

from tests.integration.telegram.conftest import health_of
from tests.integration.whatsapp.conftest import (
    deliveries,
    delivery_of,
    eventually,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import (
    MetaStandIn,
    Reply,
    meta_error,
    meta_status_notification,
    meta_text_notification,
)
from tests.support.api import Api


async def _thread(api: Api, meta: MetaStandIn, **config: Any) -> dict[str, Any]:
    """A channel, and a conversation that began with an inbound message from ``phone``."""
    w = await meta_channel(api, meta, **config)
    w["phone"] = new_phone()
    status, body = await post_inbound(api, w["channel"]["id"],
                                      meta_text_notification(w["phone"], "hi there"))
    assert status == 201, body
    w["conversation_id"] = body["conversation_id"]
    w["inbound_activity_id"] = body["activity_id"]
    return w


async def _reply(api: Api, w: dict[str, Any], text: str = "How can we help?", **metadata: Any
                 ) -> dict[str, Any]:
    return await api.post_activity(w["conversation_id"], w["api_key"], text=text, sender="agent",
                                   metadata=metadata)


async def test_reply_goes_to_the_sender_and_statuses_advance_it(wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta)
    # The inbound message itself is not sent back out through the channel it came from.
    assert await deliveries(wapi, activity_id=w["inbound_activity_id"]) == []
    reply = await _reply(wapi, w)
    sent = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    [req] = await meta.wait_for(1)
    assert req.path == f"/{meta.version}/{meta.phone_number_id}/messages"
    assert req.headers["Authorization"] == f"Bearer {meta.token}"
    assert req.body == {"messaging_product": "whatsapp", "recipient_type": "individual",
                        "to": w["phone"], "type": "text", "text": {"body": "How can we help?"}}
    wamid = meta.sent[0]["id"]
    assert sent["provider_message_id"] == wamid and sent["attempts"] == 1

    cid = w["channel"]["id"]
    status, body = await post_inbound(wapi, cid, meta_status_notification(wamid, "delivered", w["phone"],
                                                                          "1750263773"))
    assert (status, body) == (200, {"status": "accepted", "receipts_processed": 1})
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "delivered")
    assert d["delivered_at"].startswith("2025-06-18T16:22:53")
    assert (await post_inbound(wapi, cid, meta_status_notification(wamid, "read", w["phone"])))[0] == 200
    await delivery_of(wapi, reply["id"], lambda d: d["status"] == "read" and d["read_at"])
    # A late "delivered" after "read" changes nothing.
    assert (await post_inbound(wapi, cid, meta_status_notification(wamid, "delivered", w["phone"])))[0] == 200
    assert (await deliveries(wapi, activity_id=reply["id"]))[0]["status"] == "read"
    # A status for a message converger never sent is accepted and counts for nothing.
    status, body = await post_inbound(wapi, cid, meta_status_notification("wamid.UNKNOWN", "read", "1"))
    assert (status, body["receipts_processed"]) == (200, 0)


async def test_failed_status_records_metas_reason(wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta)
    reply = await _reply(wapi, w)
    await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    payload = meta_status_notification(meta.sent[0]["id"], "failed", w["phone"])
    s = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    s["errors"] = [{"code": 131047, "title": "Re-engagement message",
                    "message": "Re-engagement message"}]
    assert (await post_inbound(wapi, w["channel"]["id"], payload))[0] == 200
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "failed")
    assert d["last_error"] == "Re-engagement message"


async def test_metadata_recipient_wins_and_a_conversation_without_one_fails(
    wapi: Api, meta: MetaStandIn
) -> None:
    w = await _thread(wapi, meta)
    other = new_phone()
    reply = await _reply(wapi, w, recipient_phone=other)
    await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    assert meta.requests[-1].body["to"] == other

    # A conversation opened through the API (not by an inbound message) has no one to reply to.
    token = await wapi.channel_token(w["channel"]["id"])
    conv = await wapi.conversation(token)
    before = len(meta.requests)
    act = await wapi.post_activity(conv["id"], w["api_key"], text="to whom?", sender="agent")
    d = await delivery_of(wapi, act["id"], lambda d: d["status"] == "failed")
    assert "'recipient_phone' or 'to'" in d["last_error"] and d["attempts"] == 1
    assert len(meta.requests) == before


async def test_bad_token_fails_at_once_with_metas_message(wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta, access_token="EAAG-expired")
    reply = await _reply(wapi, w)
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "failed")
    assert d["attempts"] == 1
    assert "Error validating access token: Session has expired." in d["last_error"]


async def test_a_revoked_token_marks_the_channel_unhealthy(wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta)
    for _ in range(3):  # a failure rate of 1 in 4 afterwards: "degraded" by itself, not "unhealthy"
        assert (await delivery_of(wapi, (await _reply(wapi, w))["id"],
                                  lambda d: d["status"] == "sent"))["attempts"] == 1
    health_before = await health_of(wapi, w["channel"]["id"])
    meta.token = "rotated-in-business-manager"  # the channel's token is no longer valid
    d = await delivery_of(wapi, (await _reply(wapi, w))["id"], lambda d: d["status"] == "failed")
    assert d["attempts"] == 1 and "401" in d["last_error"]
    assert health_before != "unhealthy"
    await eventually(lambda: _unhealthy(wapi, w["channel"]["id"]), "the channel unhealthy")


async def _unhealthy(api: Api, channel_id: str) -> bool:
    return await health_of(api, channel_id) == "unhealthy"


async def test_bad_recipient_fails_at_once(wapi: Api, meta: MetaStandIn) -> None:
    meta.allowed = set()
    w = await _thread(wapi, meta)
    reply = await _reply(wapi, w)
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "failed")
    assert d["attempts"] == 1 and "Recipient phone number not in allowed list" in d["last_error"]


async def test_429_and_500_retry_on_the_schedule(wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta)
    meta.script += [Reply(429, meta_error("(#130429) Rate limit hit", 130429), {"Retry-After": "1"}),
                    Reply(500, meta_error("An unexpected error has occurred.", 2))]
    reply = await _reply(wapi, w)
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent", timeout=15)
    assert d["attempts"] == 3 and d["provider_message_id"] == meta.sent[0]["id"]
    assert len(meta.requests) == 3


async def test_a_stalled_provider_times_out_and_is_retried(wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta, timeout_seconds=0.3)
    meta.script.append(Reply(200, {"messages": [{"id": "wamid.LATE"}]}, delay=0.8))
    reply = await _reply(wapi, w)
    d = await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent", timeout=15)
    assert d["attempts"] == 2 and d["provider_message_id"] == meta.sent[0]["id"]
