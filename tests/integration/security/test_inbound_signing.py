"""Hole 8 (issue 13): new channels that receive messages must be able to verify them
(opting out is explicit and shown as a warning in the admin panel), and a signed request
replayed — by ``x-converger-signature`` without a message id, or a reused Standard Webhooks
``webhook-id`` — creates nothing new."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.integration.web.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Client
from tests.support.api import Api


async def test_new_channels_require_a_signing_secret(make_server: Any) -> None:
    import aiohttp

    srv = make_server(admin=True)
    async with aiohttp.ClientSession() as s:
        api = Api(s, srv.url)
        t = await api.tenant("signing")
        meta = {"phone_number_id": "1", "access_token": "EAAG", "verify_token": "v"}
        status, body, _ = await api.call("POST", "/api/admin/channels", headers=api.admin, json={
            "tenant_id": t["id"], "name": "m", "type": "whatsapp_meta", "config": meta})
        assert status == 422 and "config.app_secret" in body["errors"], body
        status, body, _ = await api.call("POST", "/api/admin/channels", headers=api.admin, json={
            "tenant_id": t["id"], "name": "ib", "type": "whatsapp_infobip", "config": {
                "base_url": "https://x.api.infobip.com", "api_key": "k", "sender": "1"}})
        assert status == 422 and "config.webhook_password" in body["errors"], body
        # Outbound-only needs none; an explicit opt-out is accepted and shown as a warning.
        await api.channel(t["id"], name="m-out", type="whatsapp_meta", mode="outbound", config=meta)
        await api.channel(t["id"], name="m-open", type="whatsapp_meta",
                          config={**meta, "allow_unsigned": True})
        hook = await api.channel(t["id"], name="h", type="webhook",
                                 config={"url": "http://127.0.0.1:9/x"})
        status, body, _ = await api.call("POST", f"/api/v1/channels/{hook['id']}/inbound",
                                         json={"sender": "mallory", "text": "forged"})
        assert status == 401 and body["code"] == "signature_required", body
    admin = Client(srv.url)
    try:
        assert await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
        _, page, _ = await admin.get("/admin/channels")
        assert page.count("Accepts unsigned inbound messages") == 1, page  # m-open only
    finally:
        await admin.close()


def _converger_signed(secret: str, body: bytes) -> dict[str, str]:
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-converger-signature": sig}


async def _count(api: Api, tenant_key: str, channel_id: str) -> int:
    convs = await api.ok("GET", f"/api/admin/conversations?channel_id={channel_id}&limit=100",
                         headers=api.admin)
    total = 0
    for c in convs["data"]:
        items = await api.ok("GET", f"/api/v1/conversations/{c['id']}/activities",
                             headers={"x-api-key": tenant_key})
        total += len(items["data"])
    return total


async def test_signed_replays_create_nothing_new(api: Api) -> None:
    t = await api.tenant("replay")
    ch = await api.channel(t["id"], type="webhook", config={"url": "http://127.0.0.1:9/x"})
    path = f"/api/v1/channels/{ch['id']}/inbound"
    body = json.dumps({"sender": "alice", "text": "pay 100"}).encode()  # no message id
    first = await api.call("POST", path, data=body, headers=_converger_signed(ch["secret"], body))
    again = await api.call("POST", path, data=body, headers=_converger_signed(ch["secret"], body))
    assert first[0] == 201 and again[0] == 200 and again[1].get("duplicate") is True, again
    assert again[1]["activity_id"] == first[1]["activity_id"]
    # Standard Webhooks: the same webhook-id within the tolerance is the same message.
    body2 = json.dumps({"sender": "bob", "text": "hi"})
    stamp = int(time.time())
    sig = Webhook(ch["secret"]).sign("msg_7", datetime.fromtimestamp(stamp, UTC), body2)
    headers = {"webhook-id": "msg_7", "webhook-timestamp": str(stamp), "webhook-signature": sig,
               "content-type": "application/json"}
    one = await api.call("POST", path, data=body2, headers=headers)
    two = await api.call("POST", path, data=body2, headers=headers)
    assert one[0] == 201 and two[0] == 200 and two[1]["activity_id"] == one[1]["activity_id"]
    assert await _count(api, t["api_key"], ch["id"]) == 2
