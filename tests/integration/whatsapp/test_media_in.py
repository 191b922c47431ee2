"""Inbound media kept: a Meta notification with an image's media id → the background job
downloads it through the stand-in (media URL lookup, then the file, both with the channel's
token) into the upload store → the attachment's ``contentUrl`` serves the same bytes to the
tenant (401 without credentials, 404 for another tenant). Faults — an expired id, a file URL
that 404s or hangs, a file over the size limit, a file that is not the image it claims to be —
end in a recorded failed attachment, the activity kept."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from tests.integration.whatsapp.conftest import (
    activities,
    eventually,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, sample
from tests.support.api import Api

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def image_notification(sender: str, media_id: str, mime: str = "image/png") -> dict[str, Any]:
    payload = sample("meta_inbound_image.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = sender
    msg = value["messages"][0]
    msg.update(id="wamid." + uuid.uuid4().hex.upper(), **{"from": sender})
    msg["image"].update(id=media_id, mime_type=mime,
                        sha256=hashlib.sha256(PNG).hexdigest())
    return payload


async def _inbound(api: Api, meta: MetaStandIn, media_id: str, **config: Any
                   ) -> tuple[dict[str, Any], str]:
    w = await meta_channel(api, meta, **config)
    status, body = await post_inbound(api, w["channel"]["id"],
                                      image_notification(new_phone(), media_id))
    assert status == 201, body
    return w, body["conversation_id"]


async def _settled(api: Api, w: dict[str, Any], conv: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        [act] = await activities(api, w["api_key"], conv)
        att = act["attachments"][0]
        return att if att.get("status") in ("stored", "failed") else None
    return await eventually(probe, "the attachment's download", timeout=20)


async def test_inbound_image_is_downloaded_and_served(wapi: Api, meta: MetaStandIn) -> None:
    meta.add_media("4490709327384033", PNG, "image/png")
    w, conv = await _inbound(wapi, meta, "4490709327384033")
    att = await _settled(wapi, w, conv)
    assert att["status"] == "stored", att
    assert att["contentType"] == "image/png" and att["size"] == len(PNG)
    assert att["media_id"] == "4490709327384033" and att["caption"] == "Black jacket"
    lookups = [r for r in meta.requests if r.method == "GET"]
    assert [r.path for r in lookups] == [f"/{meta.version}/4490709327384033",
                                         "/whatsapp_media/4490709327384033"]
    assert all(r.headers["Authorization"] == f"Bearer {meta.token}" for r in lookups)
    url = att["contentUrl"]
    assert url.startswith(f"/uploads/{w['tenant']['id']}/")
    async with wapi.session.get(wapi.base + url, headers={"x-api-key": w["api_key"]}) as r:
        assert r.status == 200 and await r.read() == PNG
    status, _, _ = await wapi.call("GET", url)
    assert status == 401
    other = await wapi.tenant(f"other-{uuid.uuid4().hex[:6]}")
    status, _, _ = await wapi.call("GET", url, headers={"x-api-key": other["api_key"]})
    assert status == 404


async def test_download_faults_are_recorded_failures(wapi: Api, meta: MetaStandIn) -> None:
    meta.add_media("100", PNG, "image/png", fault="expired")
    meta.add_media("200", PNG, "image/png", fault="gone")
    meta.add_media("300", PNG, "image/png", fault="hang")
    meta.add_media("400", b"<html>not an image</html>", "text/html")
    meta.add_media("500", PNG, "image/png", served_as="text/html")
    cases = {"100": "does not exist", "200": "download returned 404", "300": "timeout",
             "400": "the file is text/html", "500": "served as text/html"}
    for media_id, reason in cases.items():
        w, conv = await _inbound(wapi, meta, media_id, timeout_seconds=0.3)
        att = await _settled(wapi, w, conv)
        assert att["status"] == "failed" and reason in att["error"], (media_id, att)
        assert "contentUrl" not in att
        [act] = await activities(wapi, w["api_key"], conv)
        assert act["text"] == "Black jacket"  # the activity itself is kept as it came


async def test_a_file_over_the_limit_is_not_kept(wapi: Api, meta: MetaStandIn) -> None:
    big = b"\x00" * (10_485_760 + 1)  # the server's CONVERGER_MAX_UPLOAD_BYTES + 1
    meta.add_media("600", big, "image/png")
    w, conv = await _inbound(wapi, meta, "600")
    att = await _settled(wapi, w, conv)
    assert att["status"] == "failed" and "at most 10485760" in att["error"], att
    assert not [r for r in meta.requests if r.path == "/whatsapp_media/600"]
