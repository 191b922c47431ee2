"""Outbound media through the real queue to the stand-in providers: an image with its caption
and a document (by link and by Meta media id) reach the stand-in exactly as the providers'
documented payloads show; a type or size the provider does not take fails at once with the
reason, no request made, the activity kept."""

from __future__ import annotations

from typing import Any

from tests.integration.whatsapp.conftest import (
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
    meta_text_notification,
)
from tests.support.api import Api

IMAGE = {"type": "image", "contentType": "image/png", "name": "aloe.png", "size": 48_213,
         "contentUrl": "https://cdn.example.com/assets/aloe.png"}
DOC = {"type": "document", "contentType": "application/pdf", "name": "invoice-42.pdf",
       "size": 120_000, "contentUrl": "https://cdn.example.com/invoice-42.pdf"}


async def _meta_thread(api: Api, meta: MetaStandIn) -> dict[str, Any]:
    w = await meta_channel(api, meta)
    w["phone"] = new_phone()
    status, body = await post_inbound(api, w["channel"]["id"],
                                      meta_text_notification(w["phone"], "send me the invoice"))
    assert status == 201, body
    w["conversation_id"] = body["conversation_id"]
    return w


async def _send(api: Api, w: dict[str, Any], text: str | None, *atts: dict[str, Any]) -> str:
    act = await api.post_activity(w["conversation_id"], w["api_key"], text=text, sender="agent",
                                  attachments=list(atts))
    return str(act["id"])


async def test_meta_image_with_caption_and_document(wapi: Api, meta: MetaStandIn) -> None:
    w = await _meta_thread(wapi, meta)
    image = await _send(wapi, w, "The best succulent ever?", IMAGE)
    await delivery_of(wapi, image, lambda d: d["status"] == "sent")
    doc = await _send(wapi, w, "Your invoice", DOC)
    await delivery_of(wapi, doc, lambda d: d["status"] == "sent")
    by_id = await _send(wapi, w, None, {"type": "image", "contentType": "image/jpeg",
                                        "media_id": "1013859600285441"})
    await delivery_of(wapi, by_id, lambda d: d["status"] == "sent")
    reqs = await meta.wait_for(3)
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": w["phone"]}
    assert [r.body for r in reqs] == [
        {**base, "type": "image", "image": {"link": IMAGE["contentUrl"],
                                            "caption": "The best succulent ever?"}},
        {**base, "type": "document", "document": {"link": DOC["contentUrl"],
                                                  "caption": "Your invoice",
                                                  "filename": "invoice-42.pdf"}},
        {**base, "type": "image", "image": {"id": "1013859600285441"}},
    ]
    assert all(r.headers["Authorization"] == f"Bearer {meta.token}" for r in reqs)


async def test_media_meta_cannot_take_fails_at_once(wapi: Api, meta: MetaStandIn) -> None:
    w = await _meta_thread(wapi, meta)
    cases = [
        ({**IMAGE, "size": 6 * 1_048_576}, "at most 5242880 bytes"),
        ({**IMAGE, "contentType": "image/gif", "name": "x.gif"}, "not image/gif"),
        ({"type": "hologram", "contentUrl": "https://cdn.example.com/h"}, "'hologram'"),
        ({"type": "audio", "contentType": "audio/ogg", "contentUrl": "https://c.example.com/a"},
         "carry no caption"),
    ]
    for att, reason in cases:
        aid = await _send(wapi, w, "look", att)
        d = await delivery_of(wapi, aid, lambda d: d["status"] == "failed")
        assert reason in d["last_error"] and d["attempts"] == 1, d
    assert meta.requests == []
    # Every activity is kept, with its attachment, whatever its delivery did.
    kept = await activities(wapi, w["api_key"], w["conversation_id"])
    assert [a["attachments"] for a in kept[1:]] == [[att] for att, _ in cases]


async def test_infobip_image_document_endpoints(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    phone = "385919998888"
    status, body = await post_inbound(wapi, w["channel"]["id"],
                                      infobip_text_message(phone, "hello"))
    assert status == 201, body
    w["conversation_id"] = body["conversation_id"]
    image = await _send(wapi, w, "Our new pot", IMAGE)
    await delivery_of(wapi, image, lambda d: d["status"] == "sent")
    doc = await _send(wapi, w, None, DOC)
    await delivery_of(wapi, doc, lambda d: d["status"] == "sent")
    reqs = await infobip.wait_for(2)
    assert [(r.path, r.body) for r in reqs] == [
        ("/whatsapp/1/message/image", {"from": infobip.sender, "to": phone, "content": {
            "mediaUrl": IMAGE["contentUrl"], "caption": "Our new pot"}}),
        ("/whatsapp/1/message/document", {"from": infobip.sender, "to": phone, "content": {
            "mediaUrl": DOC["contentUrl"], "filename": "invoice-42.pdf"}}),
    ]
    # Infobip takes media by URL only: a Meta media id fails at once.
    by_id = await _send(wapi, w, None, {"type": "image", "media_id": "123"})
    d = await delivery_of(wapi, by_id, lambda d: d["status"] == "failed")
    assert "by URL only" in d["last_error"] and len(infobip.requests) == 2
