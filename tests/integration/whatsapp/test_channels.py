"""WhatsApp channels through the management API: both types are created with their config,
their credentials are encrypted at rest and never shown again (answers, lists, audit log,
database files, server log), and bad config is refused with the adapter's message."""

from __future__ import annotations

from pathlib import Path

from tests.support.api import Api
from tests.support.server import Server

META_TOKEN = "EAAGm0PX4ZCpsBAKZCsecret-meta-access-token-7781"
APP_SECRET = "meta-app-secret-5f1e2d3c4b5a69788"
IB_KEY = "infobip-api-key-3b9f1c2e8d7a6b5c4d3e2f1a0b9c8d7e-55aa"
IB_HOOK_PASSWORD = "infobip-webhook-password-9d8c7b6a5f4e"


def _files_contain(data_dir: Path, needle: str) -> list[str]:
    hits = []
    for path in data_dir.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(path.name)
    return hits


async def test_credentials_are_encrypted_and_never_shown(api: Api, server: Server) -> None:
    tenant = await api.tenant("wa-secrets")
    meta = await api.channel(tenant["id"], name="wa-meta", type="whatsapp_meta", config={
        "phone_number_id": "106540352242922", "access_token": META_TOKEN,
        "verify_token": "hub-verify-1", "app_secret": APP_SECRET, "api_version": "v25.0"})
    infobip = await api.channel(tenant["id"], name="wa-infobip", type="whatsapp_infobip", config={
        "base_url": "https://xyz.api.infobip.com", "api_key": IB_KEY, "sender": "447860099299",
        "webhook_username": "infobip", "webhook_password": IB_HOOK_PASSWORD})

    assert meta["config"] == {"phone_number_id": "106540352242922", "access_token": "****",
                              "verify_token": "****", "app_secret": "****",  # issue 13
                              "api_version": "v25.0"}
    assert meta["mode"] == "duplex" and meta["secret"].startswith("whsec_")
    assert infobip["config"] == {"base_url": "https://xyz.api.infobip.com", "api_key": "****",
                                 "sender": "447860099299", "webhook_username": "infobip",
                                 "webhook_password": "****"}

    for ch in (meta, infobip):
        shown = await api.ok("GET", f"/api/admin/channels/{ch['id']}", headers=api.admin)
        assert "secret" not in shown["data"] or shown["data"]["secret"] is None
        assert shown["data"]["config"] == ch["config"]
    listing = await api.ok("GET", f"/api/admin/channels?tenant_id={tenant['id']}", headers=api.admin)
    assert {c["id"] for c in listing["data"]} == {meta["id"], infobip["id"]}

    # A masked value sent back unchanged keeps the stored secret; a new one replaces it.
    patched = await api.ok("PATCH", f"/api/admin/channels/{meta['id']}", headers=api.admin, json={
        "config": {**meta["config"], "access_token": META_TOKEN + "-rotated"}})
    assert patched["data"]["config"]["access_token"] == "****"
    assert patched["data"]["config"]["app_secret"] == "****"

    _, audit, _ = await api.call("GET", "/api/admin/audit?limit=200", headers=api.admin)
    text = str(audit) + str(listing) + str(patched)
    for secret in (META_TOKEN, APP_SECRET, IB_KEY, IB_HOOK_PASSWORD):
        assert secret not in text
        assert _files_contain(server.data_dir, secret) == [], secret


async def test_bad_config_is_refused_with_the_adapter_message(api: Api) -> None:
    tenant = await api.tenant("wa-bad-config")
    status, body, _ = await api.call("POST", "/api/admin/channels", headers=api.admin, json={
        "tenant_id": tenant["id"], "name": "m", "type": "whatsapp_meta",
        "config": {"phone_number_id": "1", "access_token": "t"}})
    assert status == 422, body
    assert "whatsapp_meta config missing: verify_token" in str(body)
    status, body, _ = await api.call("POST", "/api/admin/channels", headers=api.admin, json={
        "tenant_id": tenant["id"], "name": "i", "type": "whatsapp_infobip",
        "config": {"base_url": "not a url", "api_key": "k", "sender": "4478"}})
    assert status == 422, body
    assert "whatsapp_infobip config 'base_url' must be a valid HTTP/HTTPS URL" in str(body)
