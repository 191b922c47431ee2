"""Infobip rich messages end to end: templates synced from the stand-in's
``/whatsapp/2/senders/{sender}/templates``, a template activity sent to
``/whatsapp/1/message/template`` as Infobip documents it, and an inbound image downloaded from
its media URL with the API key into the upload store."""

from __future__ import annotations

from typing import Any

from tests.integration.whatsapp.conftest import (
    activities,
    delivery_of,
    eventually,
    infobip_channel,
    post_inbound,
)
from tests.integration.whatsapp.standins import InfobipStandIn, infobip_text_message, sample
from tests.support.api import Api

JPEG = b"\xff\xd8\xff\xe0" + b"jpeg bytes" * 100


async def test_templates_sync_and_send(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    cid = w["channel"]["id"]
    done = await wapi.ok("POST", f"/api/admin/channels/{cid}/actions/sync_templates",
                         headers=wapi.admin)
    assert done["data"]["result"]["count"] == 1
    [listed] = (await wapi.ok("GET", f"/api/admin/channels/{cid}/templates",
                              headers=wapi.admin))["data"]
    assert listed["components"] == [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way."}]
    phone = "385919998888"
    status, body = await post_inbound(wapi, cid, infobip_text_message(phone, "status?"))
    assert status == 201, body
    template = {"name": "order_update", "language": "en", "components": [
        {"type": "header", "parameters": [{"type": "image",
                                           "image": {"link": "https://cdn.example.com/p.png"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                        {"type": "text", "text": "#7"}]}]}
    act = await wapi.post_activity(body["conversation_id"], w["api_key"], type="template",
                                   sender="agent", metadata={"template": template})
    await delivery_of(wapi, act["id"], lambda d: d["status"] == "sent")
    [req] = [r for r in infobip.requests if r.method == "POST"]
    assert req.path == "/whatsapp/1/message/template"
    assert req.body == {"messages": [{"from": infobip.sender, "to": phone, "content": {
        "templateName": "order_update", "language": "en", "templateData": {
            "body": {"placeholders": ["Ana", "#7"]},
            "header": {"type": "IMAGE", "mediaUrl": "https://cdn.example.com/p.png"}}}}]}


async def test_inbound_image_is_downloaded(wapi: Api, infobip: InfobipStandIn) -> None:
    w = await infobip_channel(wapi, infobip)
    infobip.files["abc123"] = (JPEG, "image/jpeg")
    payload = sample("infobip_inbound_text.json")
    r = payload["results"][0]
    r["from"] = "385919998877"
    r["messageId"] = "ib-image-1"
    r["message"] = {"type": "IMAGE", "caption": "my parcel",
                    "url": f"{infobip.url}/whatsapp/1/senders/{infobip.sender}/media/abc123"}
    status, body = await post_inbound(wapi, w["channel"]["id"], payload)
    assert status == 201, body

    async def stored() -> dict[str, Any] | None:
        [act] = await activities(wapi, w["api_key"], body["conversation_id"])
        att = act["attachments"][0]
        return att if att.get("status") in ("stored", "failed") else None

    att = await eventually(stored, "the image's download", timeout=20)
    assert att["status"] == "stored" and att["contentType"] == "image/jpeg", att
    async with wapi.session.get(wapi.base + att["contentUrl"],
                                headers={"x-api-key": w["api_key"]}) as resp:
        assert resp.status == 200 and await resp.read() == JPEG
    [get] = [q for q in infobip.requests if q.method == "GET"]
    assert get.headers["Authorization"] == f"App {infobip.api_key}"
