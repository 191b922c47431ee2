"""An activity a channel cannot carry is not delivered to it: a ``typing`` indicator (or an
event) in a WhatsApp conversation gets a ``skipped`` delivery with the reason — never a request
to the provider, never an empty text, never a failure in the channel's health — while the
messages around it are sent as usual. A webhook channel (every type) still gets both."""

from __future__ import annotations

from tests.integration.delivery.receiver import Receiver
from tests.integration.whatsapp.conftest import (
    deliveries,
    delivery_of,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification
from tests.support.api import Api


async def test_typing_and_events_are_skipped_with_a_reason(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    status, body = await post_inbound(wapi, w["channel"]["id"],
                                      meta_text_notification(new_phone(), "hello"))
    assert status == 201, body
    conv, key = body["conversation_id"], w["api_key"]

    typing = await wapi.post_activity(conv, key, type="typing", sender="agent")
    event = await wapi.post_activity(conv, key, type="event", sender="agent",
                                     metadata={"name": "agent_joined"})
    reply = await wapi.post_activity(conv, key, text="Here to help", sender="agent")

    # The message after them is sent: the workers ran past the two rows and took neither.
    await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
    [req] = await meta.wait_for(1)
    assert req.body["type"] == "text" and req.body["text"] == {"body": "Here to help"}
    for activity, kind in ((typing, "typing"), (event, "event")):
        [row] = await deliveries(wapi, activity_id=activity["id"])
        assert row["status"] == "skipped" and row["attempts"] == 0, row
        assert row["last_error"] == f"skipped: whatsapp_meta channels do not carry '{kind}' activities"
    assert len(meta.sent) == 1
    # Listed and filtered as their own status; not a failure, and not retryable.
    skipped = await deliveries(wapi, status="skipped", channel_id=w["channel"]["id"])
    assert {d["activity_id"] for d in skipped} == {typing["id"], event["id"]}
    assert await deliveries(wapi, status="failed", channel_id=w["channel"]["id"]) == []
    status, body, _ = await wapi.call("POST", f"/api/admin/deliveries/{skipped[0]['id']}/retry",
                                      headers=wapi.admin)
    assert status == 409 and body["code"] == "not_retryable"


async def test_a_webhook_channel_carries_every_type(wapi: Api) -> None:
    receiver = await Receiver().start()
    try:
        t = await wapi.tenant("every-type")
        c = await wapi.channel(t["id"], type="webhook", config={"url": receiver.url("typing")})
        conv = await wapi.conversation(await wapi.channel_token(c["id"]))
        typing = await wapi.post_activity(conv["id"], t["api_key"], type="typing", sender="agent")
        row = await delivery_of(wapi, typing["id"], lambda d: d["status"] == "sent")
        assert row["attempts"] == 1
        assert receiver.calls["typing"][0].json()["type"] == "typing"
    finally:
        await receiver.stop()
