"""Outbound media uploaded to Meta (a channel with ``media_upload: true``): a file a client
uploaded to the gateway is fetched by the delivery from the gateway's signed link, uploaded to
the stand-in's ``POST /{phone_number_id}/media`` exactly as Meta documents it (multipart
``messaging_product``, ``type``, ``file``), and sent by the media id Meta answered, with its
caption. Meta refusing the upload fails the delivery at once with Meta's reason; Meta not
answering it is retried; the activity is kept either way."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.whatsapp.conftest import (
    activities,
    delivery_of,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import (
    MetaStandIn,
    Reply,
    meta_error,
    meta_text_notification,
)
from tests.support.api import Api

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PDF = b"%PDF-1.7\n" + b"invoice 42 " * 50


async def _thread(api: Api, meta: MetaStandIn) -> dict[str, Any]:
    """A media_upload channel, a conversation the customer began, and a channel-wide
    Converger token to upload files into it."""
    w = await meta_channel(api, meta, media_upload=True)
    w["phone"] = new_phone()
    status, body = await post_inbound(api, w["channel"]["id"],
                                      meta_text_notification(w["phone"], "a photo please"))
    assert status == 201, body
    w["conversation_id"] = body["conversation_id"]
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate",
                       headers={"authorization": f"Bearer {w['channel']['secret']}"})
    w["token"] = gen["token"]
    return w


async def _upload(api: Api, w: dict[str, Any], content: bytes, name: str, ctype: str,
                  text: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=name, content_type=ctype)
    form.add_field("activity", f'{{"type": "message", "text": "{text}"}}')
    up: dict[str, Any] = await api.ok(
        "POST", f"/api/v1/converger/conversations/{w['conversation_id']}/upload",
        headers={"authorization": f"Bearer {w['token']}"}, data=form)
    return up


async def test_uploaded_to_meta_then_sent_by_id(wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta)
    image = await _upload(wapi, w, PNG, "aloe.png", "image/png", "The best succulent ever?")
    d = await delivery_of(wapi, image["id"], lambda d: d["status"] in ("sent", "failed"))
    assert d["status"] == "sent", d
    doc = await _upload(wapi, w, PDF, "invoice-42.pdf", "application/pdf", "Your invoice")
    d = await delivery_of(wapi, doc["id"], lambda d: d["status"] in ("sent", "failed"))
    assert d["status"] == "sent", d

    uploads = [r for r in meta.requests if r.path.endswith("/media")]
    assert [r.path for r in uploads] == [f"/{meta.version}/{meta.phone_number_id}/media"] * 2
    assert all(r.headers["Authorization"] == f"Bearer {meta.token}" for r in uploads)
    assert [r.body for r in uploads] == [
        {"messaging_product": "whatsapp", "type": "image/png", "file": {
            "filename": "aloe.png", "content_type": "image/png", "content": PNG}},
        {"messaging_product": "whatsapp", "type": "application/pdf", "file": {
            "filename": "invoice-42.pdf", "content_type": "application/pdf", "content": PDF}},
    ]
    image_id, doc_id = sorted(meta.media)
    assert meta.media[image_id]["body"] == PNG and meta.media[doc_id]["body"] == PDF
    sends = [r.body for r in meta.requests if r.path.endswith("/messages")]
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": w["phone"]}
    assert sends == [
        {**base, "type": "image", "image": {"id": image_id,
                                            "caption": "The best succulent ever?"}},
        {**base, "type": "document", "document": {"id": doc_id, "caption": "Your invoice",
                                                  "filename": "invoice-42.pdf"}},
    ]
    # Nothing ever linked: Meta was never asked to fetch the gateway's URL.
    assert not any("link" in str(s) for s in sends)


async def test_upload_refused_fails_at_once_unanswered_is_retried(
        wapi: Api, meta: MetaStandIn) -> None:
    w = await _thread(wapi, meta)
    meta.upload_script = [Reply(400, meta_error("(#131053) Media upload error", 131053,
                                         error_data={"messaging_product": "whatsapp",
                                                     "details": "Unsupported file type"}))]
    refused = await _upload(wapi, w, PNG, "a.png", "image/png", "one")
    d = await delivery_of(wapi, refused["id"], lambda d: d["status"] == "failed")
    assert d["attempts"] == 1 and "media upload returned 400" in d["last_error"], d
    assert "Media upload error" in d["last_error"]

    meta.upload_script = [Reply(503, meta_error("Service temporarily unavailable", 2,
                                                "OAuthException"))]
    later = await _upload(wapi, w, PNG, "b.png", "image/png", "two")
    d = await delivery_of(wapi, later["id"], lambda d: d["status"] == "sent")
    assert d["attempts"] == 2, d
    assert len([r for r in meta.requests if r.path.endswith("/media")]) == 3
    assert len([r for r in meta.requests if r.path.endswith("/messages")]) == 1
    # A link that 404s is final; one bigger than Meta takes for its type is refused unsent.
    meta.cdn["big.png"] = (b"\x89PNG" + b"\x00" * (5 * 1_048_576), "image/png")
    for url, reason in ((f"{meta.url}/cdn/none.png", "returned 404"),
                        (f"{meta.url}/cdn/big.png", "over 5242880 bytes")):
        act = await wapi.post_activity(w["conversation_id"], w["api_key"], text="three",
                                       sender="agent", attachments=[
            {"type": "image", "contentType": "image/png", "contentUrl": url}])
        d = await delivery_of(wapi, act["id"], lambda d: d["status"] == "failed")
        assert d["attempts"] == 1 and reason in d["last_error"], d
    assert len([r for r in meta.requests if r.path.endswith("/media")]) == 3
    kept = await activities(wapi, w["api_key"], w["conversation_id"])
    assert [a["text"] for a in kept] == ["a photo please", "one", "two", "three", "three"]


async def test_upload_setting_is_validated(wapi: Api, meta: MetaStandIn) -> None:
    tenant = await wapi.tenant(f"wa-upload-{new_phone()}")
    status, body, _ = await wapi.call("POST", "/api/admin/channels", headers=wapi.admin, json={
        "tenant_id": tenant["id"], "name": "wa", "type": "whatsapp_meta", "config": {
            "phone_number_id": "1", "access_token": "t", "verify_token": "v",
            "allow_unsigned": True, "media_upload": "yes"}})
    assert status == 422 and "media_upload" in body["detail"], body


async def test_a_gateway_upload_goes_to_meta_once(wapi: Api, meta: MetaStandIn) -> None:
    """A retry after Meta failed the send, and the same upload sent again later, reuse the
    media id Meta gave it: the file is uploaded once."""
    w = await _thread(wapi, meta)
    before = len(meta.media)
    # The upload is taken; then the send itself fails once (a 500) and is retried.
    meta.script = [Reply(500, meta_error("An unexpected error", 2))]
    first = await _upload(wapi, w, PNG, "aloe.png", "image/png", "first")
    d = await delivery_of(wapi, first["id"], lambda d: d["status"] in ("sent", "failed"))
    assert d["status"] == "sent" and d["attempts"] == 2, d
    again = await wapi.post_activity(w["conversation_id"], w["api_key"], text="again",
                                     sender="agent", attachments=[{"upload_id": first["upload_id"]}])
    await delivery_of(wapi, again["id"], lambda d: d["status"] == "sent")
    assert len([r for r in meta.requests if r.path.endswith("/media")]) == 1
    assert len(meta.media) == before + 1
    sends = [r.body for r in meta.requests if r.path.endswith("/messages")]
    [media_id] = {s["image"]["id"] for s in sends}
    assert [s["image"].get("caption") for s in sends] == ["first", "first", "again"]
    assert media_id in meta.media
