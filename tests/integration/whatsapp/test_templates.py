"""WhatsApp templates end to end: synced from the stand-in Graph API (two pages) by the channel's
``sync_templates`` action, listed by the management API, shown on the admin channel page; a
template activity with header and body parameters reaches the stand-in exactly as Meta
documents it; an unknown template, wrong parameters or a rejected template are refused (422)
before anything is stored."""

from __future__ import annotations

from typing import Any

from tests.integration.whatsapp.conftest import (
    activities,
    delivery_of,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification
from tests.support.api import Api

HEADER_IMAGE = "https://cdn.example.com/parcel.png"


def order_update(name: str = "order_update", language: str = "en_US",
                 body: tuple[str, ...] = ("Pablo", "#1042"), header: bool = True) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    if header:
        components.append({"type": "header", "parameters": [
            {"type": "image", "image": {"link": HEADER_IMAGE}}]})
    components.append({"type": "body", "parameters": [{"type": "text", "text": t} for t in body]})
    return {"name": name, "language": language, "components": components}


async def _synced(api: Api, meta: MetaStandIn) -> dict[str, Any]:
    w = await meta_channel(api, meta, business_account_id=meta.waba_id)
    cid = w["channel"]["id"]
    done = await api.ok("POST", f"/api/admin/channels/{cid}/actions/sync_templates",
                        headers=api.admin)
    assert done["data"]["result"]["count"] == 3
    w["phone"] = new_phone()
    status, body = await post_inbound(api, cid, meta_text_notification(w["phone"], "where is it?"))
    assert status == 201, body
    w["conversation_id"] = body["conversation_id"]
    return w


async def test_sync_lists_and_shows_templates(wapi: Api, meta: MetaStandIn) -> None:
    w = await _synced(wapi, meta)
    pages = [r for r in meta.requests if r.path.endswith("/message_templates")]
    assert len(pages) == 2 and all(r.headers["Authorization"] == f"Bearer {meta.token}"
                                   for r in pages)
    assert pages[0].path == f"/{meta.version}/{meta.waba_id}/message_templates"
    listed = await wapi.ok("GET", f"/api/admin/channels/{w['channel']['id']}/templates",
                           headers=wapi.admin)
    assert [(t["name"], t["language"], t["status"]) for t in listed["data"]] == [
        ("hello_world", "en_US", "APPROVED"), ("order_update", "en_US", "APPROVED"),
        ("spring_sale", "en_US", "REJECTED")]
    assert listed["data"][1]["components"][0] == {
        "type": "HEADER", "format": "IMAGE", "example": {
            "header_handle": ["https://scontent.whatsapp.net/v/t61.29466-34/aloe.png"]}}
    # A sync replaces: a template deleted at Meta is gone after the next sync.
    meta.templates = meta.templates[:1]
    await wapi.ok("POST", f"/api/admin/channels/{w['channel']['id']}/actions/sync_templates",
                  headers=wapi.admin)
    listed = await wapi.ok("GET", f"/api/admin/channels/{w['channel']['id']}/templates",
                           headers=wapi.admin)
    assert [t["name"] for t in listed["data"]] == ["order_update"]


async def test_sync_without_waba_or_refused_is_a_502(wapi: Api, meta: MetaStandIn) -> None:
    w = await meta_channel(wapi, meta)
    status, body, _ = await wapi.call(
        "POST", f"/api/admin/channels/{w['channel']['id']}/actions/sync_templates",
        headers=wapi.admin)
    assert status == 502 and "business_account_id" in body["detail"]
    w = await meta_channel(wapi, meta, business_account_id="999")
    status, body, _ = await wapi.call(
        "POST", f"/api/admin/channels/{w['channel']['id']}/actions/sync_templates",
        headers=wapi.admin)
    assert status == 502 and "does not exist" in body["detail"]


async def test_template_activity_reaches_meta_as_documented(wapi: Api, meta: MetaStandIn) -> None:
    w = await _synced(wapi, meta)
    act = await wapi.post_activity(w["conversation_id"], w["api_key"], type="template",
                                   sender="agent", metadata={"template": order_update()})
    await delivery_of(wapi, act["id"], lambda d: d["status"] == "sent")
    [req] = [r for r in meta.requests if r.path.endswith("/messages")]
    assert req.body == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": w["phone"],
        "type": "template", "template": {
            "name": "order_update", "language": {"code": "en_US"}, "components": [
                {"type": "header", "parameters": [{"type": "image",
                                                   "image": {"link": HEADER_IMAGE}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Pablo"},
                                                {"type": "text", "text": "#1042"}]}]}}


async def test_bad_templates_are_refused_before_anything_is_stored(
        wapi: Api, meta: MetaStandIn) -> None:
    w = await _synced(wapi, meta)
    cases = [
        (order_update(name="no_such"), "unknown_template"),
        (order_update(language="pt_BR"), "unknown_template"),
        (order_update(body=("Pablo",)), "invalid_template"),
        (order_update(header=False), "invalid_template"),
        ({"name": "spring_sale", "language": "en_US", "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "20%"}]}]}, "invalid_template"),
        ({"name": "order_update"}, "invalid_template"),
        ("order_update", "invalid_template"),
    ]
    for template, code in cases:
        status, body, _ = await wapi.call(
            "POST", f"/api/v1/conversations/{w['conversation_id']}/activities",
            json={"type": "template", "sender": "agent", "metadata": {"template": template}},
            headers={"x-api-key": w["api_key"]})
        assert (status, body["code"]) == (422, code), (template, body)
    assert len(await activities(wapi, w["api_key"], w["conversation_id"])) == 1
    assert [r for r in meta.requests if r.path.endswith("/messages")] == []
