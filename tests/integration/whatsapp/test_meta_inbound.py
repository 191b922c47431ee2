"""Meta's real-format notifications through ``POST /api/v1/channels/:id/inbound`` on the real
server: messages become activities in the sender's conversation, a replay creates nothing new,
bad payloads are refused with a clear 400, the hub challenge and X-Hub-Signature-256 work."""

from __future__ import annotations

import json

from adapters.whatsapp_meta import sign
from tests.integration.whatsapp.conftest import (
    PNID,
    VERIFY_TOKEN,
    activities,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification, sample
from tests.support.api import Api


async def test_text_message_threads_into_the_senders_conversation(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    cid = w["channel"]["id"]
    alice, bob = new_phone(), new_phone()
    status, first = await post_inbound(wapi, cid, meta_text_notification(alice, "hello"))
    assert status == 201, first
    assert first["status"] == "accepted" and first["activity_id"]
    status, second = await post_inbound(wapi, cid, meta_text_notification(alice, "still me"))
    assert status == 201 and second["conversation_id"] == first["conversation_id"]
    status, other = await post_inbound(wapi, cid, meta_text_notification(bob, "someone else"))
    assert status == 201 and other["conversation_id"] != first["conversation_id"]

    acts = await activities(wapi, w["api_key"], first["conversation_id"])
    assert [(a["sender"], a["text"]) for a in acts] == [(alice, "hello"), (alice, "still me")]
    assert acts[0]["metadata"]["whatsapp_type"] == "text"
    assert acts[0]["metadata"]["profile_name"] == "Sheena Nelson"
    assert acts[0]["metadata"]["whatsapp_message_id"].startswith("wamid.")


async def test_every_message_of_a_sample_notification(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    status, body = await post_inbound(wapi, w["channel"]["id"], sample("meta_inbound_two_messages.json"))
    assert status == 201, body
    assert len(body["activity_ids"]) == 2
    acts = await activities(wapi, w["api_key"], body["conversation_id"])
    assert [a["text"] for a in acts] == ["first", "second"]
    assert [a["seq"] for a in acts] == [1, 2]


async def test_media_and_other_types_become_attachments(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    status, body = await post_inbound(wapi, w["channel"]["id"], sample("meta_inbound_image.json"))
    assert status == 201, body
    [image] = await activities(wapi, w["api_key"], body["conversation_id"])
    assert image["text"] == "Black jacket"
    assert image["attachments"][0]["type"] == "image"
    assert image["attachments"][0]["media_id"] == "1003383421387256"

    mixed = sample("meta_inbound_mixed.json")
    for entry in mixed["entry"]:  # the sample spans two numbers; here all are this channel's
        for change in entry["changes"]:
            change["value"]["metadata"]["phone_number_id"] = PNID
    status, body = await post_inbound(wapi, w["channel"]["id"], mixed)
    assert status == 201, body
    assert len(body["activity_ids"]) == 11 and "ignored" not in body
    # Two senders in one notification: each lands in their own conversation.
    sheena = await activities(wapi, w["api_key"], body["conversation_id"])
    kinds = [a["attachments"][0]["type"] for a in sheena if a["attachments"]]
    assert {"audio", "video", "document", "sticker", "interactive", "button", "reaction",
            "unsupported"} <= set(kinds)


async def test_a_replayed_notification_creates_nothing_new(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    payload = meta_text_notification(new_phone(), "only once")
    status, first = await post_inbound(wapi, w["channel"]["id"], payload)
    assert status == 201
    status, again = await post_inbound(wapi, w["channel"]["id"], payload)
    assert status == 200, again
    assert again["activity_id"] == first["activity_id"] and again.get("duplicate") is True
    assert len(await activities(wapi, w["api_key"], first["conversation_id"])) == 1

    two = sample("meta_inbound_two_messages.json")
    two["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = sender = new_phone()
    two["entry"][0]["changes"][0]["value"]["messages"][1]["from"] = sender
    for m in two["entry"][0]["changes"][0]["value"]["messages"]:
        m["id"] += sender
    assert (await post_inbound(wapi, w["channel"]["id"], two))[0] == 201
    status, body = await post_inbound(wapi, w["channel"]["id"], two)
    assert status == 200 and len(await activities(wapi, w["api_key"], body["conversation_id"])) == 2


async def test_malformed_or_foreign_payloads_are_400(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    cid = w["channel"]["id"]
    cases = [
        (sample("infobip_inbound_text.json"), "whatsapp_business_account"),
        ({"object": "whatsapp_business_account", "entry": []}, "holds no messages"),
        ({"object": "page", "entry": [{"messaging": []}]}, "unable to parse WhatsApp Meta"),
        ([1, 2, 3], "unable to parse WhatsApp Meta"),
    ]
    for payload, words in cases:
        status, body = await post_inbound(wapi, cid, payload)
        assert status == 400, (payload, body)
        assert words in json.dumps(body), body
    status, body = await post_inbound(wapi, cid, None, raw=b'{"object": "whatsapp_business_acc')
    assert status == 400 and "malformed JSON" in json.dumps(body)
    status, body, _ = await wapi.call("POST", f"/api/v1/channels/{cid}/status",
                                      json=sample("meta_inbound_text.json"))
    assert status == 400, body


async def test_hub_challenge(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    path = f"/api/v1/channels/{w['channel']['id']}/inbound"
    ok = f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    status, body, _ = await wapi.call("GET", f"{path}?{ok}")
    assert (status, body) == (200, "1158201444")
    for bad in ("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
                f"hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
                f"hub.verify_token={VERIFY_TOKEN}&hub.challenge=1", ""):
        status, body, _ = await wapi.call("GET", f"{path}?{bad}")
        assert (status, body) == (403, "Verification failed")


async def test_x_hub_signature_when_the_channel_has_an_app_secret(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta, app_secret="app-secret-xyz")
    cid = w["channel"]["id"]
    raw = json.dumps(meta_text_notification(new_phone(), "signed")).encode()
    status, body = await post_inbound(wapi, cid, None, raw=raw)
    assert status == 401, body
    status, body = await post_inbound(wapi, cid, None, raw=raw,
                                      headers={"X-Hub-Signature-256": sign("wrong", raw)})
    assert status == 401, body
    status, body = await post_inbound(wapi, cid, None, raw=raw,
                                      headers={"X-Hub-Signature-256": sign("app-secret-xyz", raw)})
    assert status == 201, body


async def test_outbound_only_channel_takes_receipts_but_no_messages(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta, mode="outbound")
    status, body = await post_inbound(wapi, w["channel"]["id"], meta_text_notification(new_phone(), "x"))
    assert status == 400 and "does not accept inbound" in json.dumps(body)
    status, body = await post_inbound(wapi, w["channel"]["id"], sample("meta_status_read.json"))
    assert status == 200 and body == {"status": "accepted", "receipts_processed": 0}


async def test_a_batch_with_messages_and_statuses_keeps_the_messages(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    payload = meta_text_notification(new_phone(), "mixed batch")
    payload["entry"].append(sample("meta_status_read.json")["entry"][0])
    status, body = await post_inbound(wapi, w["channel"]["id"], payload)
    assert status == 201, body
    [act] = await activities(wapi, w["api_key"], body["conversation_id"])
    assert act["text"] == "mixed batch"
