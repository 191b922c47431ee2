"""Meta posts the notifications of every number of an app to the app's one callback URL. A
message for another number is never threaded into the channel whose URL it came to (replies
would leave from the wrong number): it lands on the tenant's channel for that number, or is
ignored (200, so Meta does not resend it) when the tenant has none."""

from __future__ import annotations

from tests.integration.whatsapp.conftest import (
    META_TOKEN,
    PNID,
    activities,
    delivery_of,
    meta_channel,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification, sample
from tests.support.api import Api

OTHER = "106540352242923"  # the second number of meta_inbound_mixed.json


async def test_messages_for_another_number_go_to_its_channel(wapi: Api, meta: MetaStandIn) -> None:
    a = await meta_channel(wapi, meta)
    async with MetaStandIn(token=META_TOKEN, phone_number_id=OTHER) as other:
        b = await wapi.channel(a["tenant"]["id"], name="whatsapp-2", type="whatsapp_meta",
                               mode="duplex", config={
                                   "phone_number_id": OTHER, "access_token": META_TOKEN,
                                   "verify_token": "v2", "api_base_url": other.url,
                                   "api_version": other.version, "allow_unsigned": True})
        status, body = await post_inbound(wapi, a["channel"]["id"], sample("meta_inbound_mixed.json"))
        assert status == 201, body
        assert len(body["activity_ids"]) == 11 and "ignored" not in body

        rows = await wapi.ok("GET", f"/api/admin/conversations?tenant_id={a['tenant']['id']}",
                             headers=wapi.admin)
        convs = {c["id"]: c for c in rows["data"]}
        by_channel: dict[str, list[str]] = {}
        for conv in convs.values():
            kinds = [x["metadata"]["whatsapp_type"]
                     for x in await activities(wapi, a["api_key"], conv["id"])]
            by_channel.setdefault(conv["channel_id"], []).extend(kinds)
        assert sorted(by_channel[a["channel"]["id"]]) == sorted(
            ["audio", "video", "document", "sticker", "location", "contacts"])
        assert sorted(by_channel[b["id"]]) == sorted(
            ["interactive", "interactive", "button", "reaction", "unsupported"])

        # A reply in the second number's conversation leaves from the second number.
        [conv_b] = [c for c in convs.values() if c["channel_id"] == b["id"]]
        reply = await wapi.post_activity(conv_b["id"], a["api_key"], text="from number two",
                                         sender="agent")
        await delivery_of(wapi, reply["id"], lambda d: d["status"] == "sent")
        [req] = await other.wait_for(1)
        assert req.path == f"/{other.version}/{OTHER}/messages"
        assert req.body["to"] == "16505551234"
        # (The first number's stand-in sees only the downloads of its media, GETs.)
        assert [r for r in meta.requests if r.method == "POST"] == []


async def test_messages_for_a_number_without_a_channel_are_ignored(
    wapi: Api, meta: MetaStandIn
) -> None:
    w = await meta_channel(wapi, meta)
    stray = meta_text_notification("16505550000", "wrong number", phone_number_id="999")
    status, body = await post_inbound(wapi, w["channel"]["id"], stray)
    assert (status, body) == (200, {"status": "ignored", "ignored": 1})

    both = meta_text_notification("16505550001", "mine")
    both["entry"] += stray["entry"]
    status, body = await post_inbound(wapi, w["channel"]["id"], both)
    assert status == 201 and body["ignored"] == 1, body
    assert [a["text"] for a in await activities(wapi, w["api_key"], body["conversation_id"])] == ["mine"]
    assert body["activity_id"] and PNID != "999"
