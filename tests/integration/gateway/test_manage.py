"""The management API (DESIGN §5): every route, audit entries for every change with secrets
redacted, and secrets stored only as hashes or ciphertext."""

from __future__ import annotations

import json
from typing import Any

from tests.support.api import Api
from tests.support.server import Server, stored_bytes

from .checks import NIL, key, problem

HOOK = {"url": "http://127.0.0.1:9/hook"}


async def _audit(api: Api, **filters: str) -> list[dict[str, Any]]:
    q = "&".join(f"{k}={v}" for k, v in filters.items())
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = f"/api/admin/audit?limit=100&{q}" + (f"&cursor={cursor}" if cursor else "")
        page = await api.ok("GET", path, headers=api.admin)
        out += page["data"]
        cursor = page["next"]
        if not cursor:
            return out


async def test_tenant_crud_and_rotate_key(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/admin/tenants", headers=api.admin,
                                     json={"name": "  crud  ", "alert_webhook_url": "https://a.example/x"})
    assert status == 201
    t = body["data"]
    assert t["name"] == "crud" and t["status"] == "active" and t["api_key"].startswith("cvk_")
    assert t["api_key_hint"] == t["api_key"][:8] + "…" + t["api_key"][-4:]
    shown = (await api.ok("GET", f"/api/admin/tenants/{t['id']}", headers=api.admin))["data"]
    assert "api_key" not in shown and shown["id"] == t["id"]
    # Listed (newest first, paginated).
    page = await api.ok("GET", "/api/admin/tenants?limit=2", headers=api.admin)
    assert len(page["data"]) <= 2 and "next" in page
    found, cursor = False, None
    while not found:
        page = await api.ok("GET", "/api/admin/tenants?limit=50" + (f"&cursor={cursor}" if cursor else ""),
                            headers=api.admin)
        found = any(x["id"] == t["id"] for x in page["data"])
        cursor = page["next"]
        if not cursor:
            break
    assert found and all("api_key" not in x for x in page["data"])
    patched = (await api.ok("PATCH", f"/api/admin/tenants/{t['id']}", headers=api.admin,
                            json={"name": "renamed", "alert_webhook_url": None}))["data"]
    assert patched["name"] == "renamed" and patched["alert_webhook_url"] is None
    problem(await api.call("PATCH", f"/api/admin/tenants/{t['id']}", headers=api.admin,
                           json={"status": "bogus"}), 422)
    problem(await api.call("PATCH", f"/api/admin/tenants/{t['id']}", headers=api.admin,
                           json={"alert_webhook_url": "ftp://x"}), 422)
    # Rotate: the new key works at once, the old one never again.
    rotated = (await api.ok("POST", f"/api/admin/tenants/{t['id']}/rotate-key", headers=api.admin))["data"]
    assert rotated["api_key"] != t["api_key"]
    assert (await api.call("GET", "/api/v1/routing_rules", headers=key(rotated["api_key"])))[0] == 200
    problem(await api.call("GET", "/api/v1/routing_rules", headers=key(t["api_key"])), 401, "error")
    status, body, _ = await api.call("DELETE", f"/api/admin/tenants/{t['id']}", headers=api.admin)
    assert status == 204 and body == b""
    for method in ("GET", "PATCH", "DELETE"):
        problem(await api.call(method, f"/api/admin/tenants/{t['id']}", headers=api.admin,
                               json={} if method == "PATCH" else None), 404)
    problem(await api.call("POST", f"/api/admin/tenants/{t['id']}/rotate-key", headers=api.admin), 404)
    problem(await api.call("GET", "/api/v1/routing_rules", headers=key(rotated["api_key"])), 401, "error")
    actions = [e["action"] for e in await _audit(api, resource_type="tenant", resource_id=t["id"])]
    assert sorted(actions) == ["create", "delete", "rotate_key", "update"]


async def test_channel_crud_rotate_and_token(api: Api) -> None:
    t = await api.tenant("chan-crud")
    status, body, _ = await api.call("POST", "/api/admin/channels", headers=api.admin, json={
        "tenant_id": t["id"], "name": "meta", "type": "whatsapp_meta",
        "config": {"phone_number_id": "123", "access_token": "EAAG-secret-token",
                   "verify_token": "vt", "app_secret": "s3cr3t-app"}})
    assert status == 201
    ch = body["data"]
    assert ch["secret"].startswith("whsec_") and ch["mode"] == "duplex"
    assert ch["config"]["access_token"] == "****" and ch["config"]["app_secret"] == "****"
    assert ch["config"]["phone_number_id"] == "123"
    shown = (await api.ok("GET", f"/api/admin/channels/{ch['id']}", headers=api.admin))["data"]
    assert "secret" not in shown and shown["config"] == ch["config"]
    listed = (await api.ok("GET", f"/api/admin/channels?tenant_id={t['id']}&type=whatsapp_meta",
                           headers=api.admin))["data"]
    assert [c["id"] for c in listed] == [ch["id"]]
    # Sending the masked value back keeps the stored secret; a new one replaces it.
    patched = (await api.ok("PATCH", f"/api/admin/channels/{ch['id']}", headers=api.admin, json={
        "name": "meta2", "config": {**ch["config"], "phone_number_id": "456"}}))["data"]
    assert patched["name"] == "meta2" and patched["config"]["access_token"] == "****"
    problem(await api.call("PATCH", f"/api/admin/channels/{ch['id']}", headers=api.admin,
                           json={"config": {"phone_number_id": "1"}}), 422)
    problem(await api.call("PATCH", f"/api/admin/channels/{ch['id']}", headers=api.admin,
                           json={"mode": "sideways"}), 422)
    rotated = (await api.ok("POST", f"/api/admin/channels/{ch['id']}/rotate-secret",
                            headers=api.admin))["data"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != ch["secret"]
    minted = await api.ok("POST", f"/api/admin/channels/{ch['id']}/token", headers=api.admin)
    assert set(minted) == {"token", "expires_in"} and minted["expires_in"] == 3600
    conv = await api.conversation(minted["token"])
    assert conv["channel_id"] == ch["id"]
    # Validation through the adapter protocol.
    for bad, field in (({"type": "carrier-pigeon"}, "type"),
                       ({"type": "webhook", "config": {}}, "config"),
                       ({"type": "webhook", "config": {"url": "not a url"}}, "config"),
                       ({"type": "websocket", "mode": "inbound"}, "mode"),
                       ({"type": "echo", "name": "meta2"}, "name"),
                       ({"type": "echo", "status": "paused"}, "status")):
        body = {"tenant_id": t["id"], "name": "n-" + field, **bad}
        got = problem(await api.call("POST", "/api/admin/channels", headers=api.admin, json=body),
                      422, "errors")
        assert field in got["errors"], (bad, got)
    problem(await api.call("POST", "/api/admin/channels", headers=api.admin,
                           json={"tenant_id": NIL, "name": "x", "type": "echo"}), 422)
    status, _, _ = await api.call("DELETE", f"/api/admin/channels/{ch['id']}", headers=api.admin)
    assert status == 204
    problem(await api.call("GET", f"/api/admin/channels/{ch['id']}", headers=api.admin), 404)
    problem(await api.call("POST", f"/api/admin/channels/{ch['id']}/token", headers=api.admin), 404)
    problem(await api.call("POST", f"/api/admin/channels/{ch['id']}/rotate-secret", headers=api.admin), 404)
    actions = sorted(e["action"] for e in await _audit(api, resource_type="channel",
                                                       resource_id=ch["id"]))
    assert actions == ["create", "delete", "rotate_secret", "update"]


async def test_conversations_deliveries_health(api: Api) -> None:
    t = await api.tenant("records")
    hook = await api.channel(t["id"], name="hook", type="webhook", config=HOOK)
    web = await api.channel(t["id"], name="web")
    c1 = await api.conversation(await api.channel_token(hook["id"]))
    c2 = await api.conversation(await api.channel_token(web["id"]), status="closed")
    rows = (await api.ok("GET", f"/api/admin/conversations?tenant_id={t['id']}",
                         headers=api.admin))["data"]
    assert {r["id"] for r in rows} == {c1["id"], c2["id"]}
    rows = (await api.ok("GET", f"/api/admin/conversations?channel_id={hook['id']}",
                         headers=api.admin))["data"]
    assert [r["id"] for r in rows] == [c1["id"]]
    rows = (await api.ok("GET", f"/api/admin/conversations?tenant_id={t['id']}&status=closed",
                         headers=api.admin))["data"]
    assert [r["id"] for r in rows] == [c2["id"]]
    a = await api.post_activity(c1["id"], t["api_key"], text="x")
    rows = (await api.ok("GET", f"/api/admin/deliveries?tenant_id={t['id']}", headers=api.admin))["data"]
    assert len(rows) == 1 and rows[0]["activity_id"] == a["id"] and rows[0]["channel_id"] == hook["id"]
    for q in (f"channel_id={hook['id']}", f"activity_id={a['id']}"):
        assert len((await api.ok("GET", f"/api/admin/deliveries?{q}", headers=api.admin))["data"]) == 1
    assert (await api.ok("GET", f"/api/admin/deliveries?tenant_id={t['id']}&status=failed",
                         headers=api.admin))["data"] == []
    # Retrying a delivery: pending (or failed) → due now; unknown → 404.
    retried = await api.call("POST", f"/api/admin/deliveries/{rows[0]['id']}/retry", headers=api.admin)
    assert retried[0] in (200, 409), retried
    if retried[0] == 200:  # still pending (no worker claimed it yet): made due now, audited
        assert retried[1]["data"]["status"] == "pending"
        entries = await _audit(api, resource_type="delivery", resource_id=rows[0]["id"])
        assert [e["action"] for e in entries] == ["retry"]
    problem(await api.call("POST", f"/api/admin/deliveries/{NIL}/retry", headers=api.admin), 404)
    health = await api.ok("GET", "/api/admin/health", headers=api.admin)
    assert isinstance(health["data"], list) and health["next"] is None


async def test_admin_routing_rules(api: Api) -> None:
    t = await api.tenant("admin-rules")
    a = await api.channel(t["id"], name="a", type="webhook", config=HOOK)
    b = await api.channel(t["id"], name="b", type="webhook", config=HOOK)
    problem(await api.call("POST", "/api/admin/routing_rules", headers=api.admin, json={
        "name": "r", "source_channel_id": a["id"], "target_channel_ids": [b["id"]]}), 422)
    rule = (await api.ok("POST", "/api/admin/routing_rules", 201, headers=api.admin, json={
        "tenant_id": t["id"], "name": "r", "source_channel_id": a["id"],
        "target_channel_ids": [b["id"]]}))["data"]
    assert rule["tenant_id"] == t["id"]
    listed = (await api.ok("GET", f"/api/admin/routing_rules?tenant_id={t['id']}",
                           headers=api.admin))["data"]
    assert [r["id"] for r in listed] == [rule["id"]]
    assert rule["id"] in {r["id"] for r in (await api.ok("GET", "/api/admin/routing_rules",
                                                        headers=api.admin))["data"]}
    got = (await api.ok("PATCH", f"/api/admin/routing_rules/{rule['id']}", headers=api.admin,
                        json={"enabled": False}))["data"]
    assert got["enabled"] is False
    problem(await api.call("PATCH", f"/api/admin/routing_rules/{rule['id']}", headers=api.admin,
                           json={"target_channel_ids": [a["id"]]}), 422)
    # The tenant sees the admin's rule.
    assert (await api.ok("GET", f"/api/v1/routing_rules/{rule['id']}",
                         headers=key(t["api_key"])))["data"]["enabled"] is False
    assert (await api.call("DELETE", f"/api/admin/routing_rules/{rule['id']}", headers=api.admin))[0] == 204
    problem(await api.call("DELETE", f"/api/admin/routing_rules/{rule['id']}", headers=api.admin), 404)
    problem(await api.call("PATCH", f"/api/admin/routing_rules/{rule['id']}", headers=api.admin,
                           json={}), 404)
    entries = await _audit(api, resource_type="routing_rule", resource_id=rule["id"])
    assert sorted(e["action"] for e in entries) == ["create", "delete", "update"]
    assert {e["actor_type"] for e in entries} == {"admin_token"}


async def test_admin_tokens_roles_and_revoke(api: Api) -> None:
    made = (await api.ok("POST", "/api/admin/tokens", 201, headers=api.admin,
                         json={"name": "viewer", "role": "viewer"}))["data"]
    viewer = {"authorization": f"Bearer {made['token']}"}
    assert made["token"].startswith("cva_") and made["role"] == "viewer"
    listed = (await api.ok("GET", "/api/admin/tokens", headers=api.admin))["data"]
    mine = [x for x in listed if x["id"] == made["id"]]
    assert mine and "token" not in mine[0] and "token_hash" not in mine[0]
    await api.ok("GET", "/api/admin/tenants", headers=viewer)
    problem(await api.call("POST", "/api/admin/tenants", headers=viewer, json={"name": "x"}), 403)
    admin = (await api.ok("POST", "/api/admin/tokens", 201, headers=api.admin,
                          json={"name": "admin", "role": "admin"}))["data"]
    ah = {"authorization": f"Bearer {admin['token']}"}
    await api.ok("POST", "/api/admin/tenants", 201, headers=ah, json={"name": "by-admin"})
    # Only a super_admin mints and revokes tokens.
    problem(await api.call("POST", "/api/admin/tokens", headers=ah, json={"name": "x"}), 403)
    problem(await api.call("POST", "/api/admin/tokens", headers=api.admin,
                           json={"name": "x", "role": "emperor"}), 422)
    assert (await api.call("DELETE", f"/api/admin/tokens/{made['id']}", headers=api.admin))[0] == 204
    problem(await api.call("GET", "/api/admin/tenants", headers=viewer), 401)
    problem(await api.call("DELETE", f"/api/admin/tokens/{made['id']}", headers=api.admin), 404)
    entries = await _audit(api, resource_type="admin_token", resource_id=made["id"])
    assert sorted(e["action"] for e in entries) == ["create", "revoke"]
    problem(await api.call("DELETE", f"/api/admin/tokens/{NIL}", headers=api.admin), 404)


async def test_audit_never_holds_secrets(api: Api, server: Server) -> None:
    """Every management change writes an entry; no API key, channel secret, admin token or
    adapter secret appears in any entry (nor in the database file in the clear)."""
    t = await api.tenant("audit-secrets")
    secrets: list[str] = [t["api_key"]]
    rotated = (await api.ok("POST", f"/api/admin/tenants/{t['id']}/rotate-key", headers=api.admin))["data"]
    secrets.append(rotated["api_key"])
    ch = (await api.ok("POST", "/api/admin/channels", 201, headers=api.admin, json={
        "tenant_id": t["id"], "name": "ib", "type": "whatsapp_infobip",
        "config": {"base_url": "https://api.infobip.example", "api_key": "INFOBIP-KEY-123456",
                   "sender": "4412345", "webhook_username": "ib",
                   "webhook_password": "INFOBIP-HOOK-PASS-55"}}))["data"]
    secrets += [ch["secret"], "INFOBIP-KEY-123456", "INFOBIP-HOOK-PASS-55"]
    meta = (await api.ok("POST", "/api/admin/channels", 201, headers=api.admin, json={
        "tenant_id": t["id"], "name": "meta", "type": "whatsapp_meta",
        "config": {"phone_number_id": "1", "access_token": "META-ACCESS-TOKEN-999",
                   "verify_token": "verify-me", "app_secret": "META-APP-SECRET-777"}}))["data"]
    secrets += [meta["secret"], "META-ACCESS-TOKEN-999", "META-APP-SECRET-777"]
    await api.ok("PATCH", f"/api/admin/channels/{meta['id']}", headers=api.admin, json={
        "config": {**meta["config"], "access_token": "META-ACCESS-TOKEN-NEW"}})
    secrets.append("META-ACCESS-TOKEN-NEW")
    secrets.append((await api.ok("POST", f"/api/admin/channels/{ch['id']}/rotate-secret",
                                 headers=api.admin))["data"]["secret"])
    tokn = (await api.ok("POST", "/api/admin/tokens", 201, headers=api.admin,
                         json={"name": "audited"}))["data"]
    secrets.append(tokn["token"])
    await api.ok("PATCH", f"/api/admin/tenants/{t['id']}", headers=api.admin,
                 json={"status": "inactive"})

    entries = await _audit(api, tenant_id=t["id"])
    # The tenant's own entries are found by the tenant filter too.
    assert {("tenant", "create"), ("tenant", "rotate_key"), ("tenant", "toggle_status")} <= {
        (e["resource_type"], e["action"]) for e in entries}
    entries += await _audit(api, resource_type="tenant", resource_id=t["id"])
    entries += await _audit(api, resource_type="admin_token", resource_id=tokn["id"])
    got = {(e["resource_type"], e["action"]) for e in entries}
    assert {("tenant", "create"), ("tenant", "rotate_key"), ("tenant", "toggle_status"),
            ("channel", "create"), ("channel", "update"), ("channel", "rotate_secret"),
            ("admin_token", "create")} <= got
    dump = json.dumps(entries)
    for secret in secrets:
        assert secret not in dump, secret
    for word in ('"api_key"', '"secret"', '"access_token"', '"app_secret"', '"token"',
                 '"api_key_hash"', '"secret_hash"', '"secret_enc"', '"token_hash"'):
        assert word not in dump, word
    # Stored hashed (keys, tokens) or encrypted (secrets): never in the clear on disk.
    raw = stored_bytes(server.data_dir)
    assert raw
    for secret in secrets:
        assert secret.encode() not in raw, secret
    # Sanity: something we did write is in the file.
    assert t["id"].encode() in raw


async def test_every_change_by_an_admin_is_audited(api: Api) -> None:
    before = len(await _audit(api, actor_type="admin_token"))
    t = await api.tenant("count")                       # 1
    ch = await api.channel(t["id"], name="c")           # 2
    await api.ok("PATCH", f"/api/admin/channels/{ch['id']}", headers=api.admin,
                 json={"status": "inactive"})           # 3
    await api.ok("DELETE", f"/api/admin/channels/{ch['id']}", 204, headers=api.admin)  # 4
    await api.ok("DELETE", f"/api/admin/tenants/{t['id']}", 204, headers=api.admin)    # 5
    after = await _audit(api, actor_type="admin_token")
    assert len(after) - before >= 5
    ch_entries = [e for e in after if e["resource_id"] == ch["id"]]
    assert sorted(e["action"] for e in ch_entries) == ["create", "delete", "toggle_status"]
    assert all(e["actor_id"] == "env:CONVERGER_ADMIN_TOKEN" for e in ch_entries)
    problem(await api.call("GET", "/api/admin/audit?tenant_id=nope", headers=api.admin), 400)
