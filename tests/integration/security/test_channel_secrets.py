"""Holes 4 and 11 (issue 13): stored provider secrets cannot be redirected to another host
by sending the mask back, and every credential-like config value (webhook ``headers``,
Meta's ``verify_token``) is encrypted, masked to every reader and redacted in the audit log —
while deliveries still carry it."""

from __future__ import annotations

from typing import Any

from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api

MASK = "****"


async def _patch(api: Api, channel_id: str, config: dict[str, Any]) -> tuple[int, Any]:
    status, body, _ = await api.call("PATCH", f"/api/admin/channels/{channel_id}",
                                     json={"config": config}, headers=api.admin)
    return status, body


async def test_masked_secret_is_not_kept_when_the_destination_changes(api: Api) -> None:
    t = await api.tenant("exfil")
    base = {"phone_number_id": "1", "verify_token": "v-token", "access_token": "EAAG-original",
            "api_base_url": "http://127.0.0.1:9/a", "app_secret": "app-secret"}
    ch = await api.channel(t["id"], type="whatsapp_meta", config=base)
    assert ch["config"]["access_token"] == MASK
    moved = {**base, "access_token": MASK, "verify_token": MASK, "app_secret": MASK,
             "api_base_url": "http://127.0.0.1:9/attacker"}
    status, body = await _patch(api, ch["id"], moved)
    assert status == 422, body
    assert "config.access_token" in body["errors"] and "config.verify_token" in body["errors"]
    shown = await api.ok("GET", f"/api/admin/channels/{ch['id']}", headers=api.admin)
    assert shown["data"]["config"]["api_base_url"] == "http://127.0.0.1:9/a"
    # Re-entered with the new destination: fine. The mask with an unchanged destination: fine.
    status, body = await _patch(api, ch["id"], {**moved, "access_token": "EAAG-new",
                                                "verify_token": "v2", "app_secret": "s2"})
    assert status == 200, body
    status, body = await _patch(api, ch["id"], {**moved, "access_token": MASK,
                                                "verify_token": MASK, "app_secret": MASK,
                                                "phone_number_id": "2"})
    assert status == 200, body


async def test_webhook_header_credentials_are_masked_redacted_and_still_sent(
        api: Api, receiver: Receiver) -> None:
    t = await api.tenant("hdr")
    config = {"url": receiver.url("hdr"),
              "headers": {"authorization": "Bearer hook-credential", "x-team": "blue"}}
    ch = await api.channel(t["id"], type="webhook", config=config)
    assert ch["config"]["headers"] == {"authorization": MASK, "x-team": "blue"}
    shown = await api.ok("GET", f"/api/admin/channels/{ch['id']}", headers=api.admin)
    assert shown["data"]["config"]["headers"]["authorization"] == MASK
    meta = await api.channel(t["id"], name="m", type="whatsapp_meta", config={
        "phone_number_id": "1", "verify_token": "verify-credential", "access_token": "EAAG",
        "allow_unsigned": True})
    assert meta["config"]["verify_token"] == MASK
    # The mask sent back keeps the value (same destination).
    status, body = await _patch(api, ch["id"], {
        "url": receiver.url("hdr"), "headers": {"authorization": MASK, "x-team": "green"}})
    assert status == 200, body
    audit = await api.ok("GET", f"/api/admin/audit?tenant_id={t['id']}&limit=100",
                         headers=api.admin)
    text = str(audit)
    assert "hook-credential" not in text and "verify-credential" not in text
    assert "green" in text  # the audit log does record the change
    tok = await api.channel_token(ch["id"])
    conv = await api.conversation(tok)
    await api.post_activity(conv["id"], t["api_key"], text="hi")
    (call,) = await receiver.wait_calls("hdr", 1)
    h = {k.lower(): v for k, v in call.headers.items()}
    assert h["authorization"] == "Bearer hook-credential" and h["x-team"] == "green"


async def test_verify_token_still_verifies(api: Api, server: Any) -> None:
    t = await api.tenant("verify")
    meta = await api.channel(t["id"], type="whatsapp_meta", config={
        "phone_number_id": "1", "verify_token": "verify-me", "access_token": "EAAG",
        "allow_unsigned": True})
    status, body, _ = await api.call(
        "GET", f"/api/v1/channels/{meta['id']}/inbound?hub.mode=subscribe"
               f"&hub.verify_token=verify-me&hub.challenge=42")
    assert (status, body) == (200, 42) or (status, str(body)) == (200, "42")
