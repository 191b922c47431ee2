"""The admin pages' operations over plain HTTP: dashboard figures, tenant and channel
life-cycle, routing rules with their validations, the deliveries dashboard (filter, retry one,
retry all failed of a channel) and the audit log."""

from __future__ import annotations

import html
import re
import sqlite3

from tests.integration.web.conftest import Client
from tests.support.api import Api
from tests.support.server import Server, open_database


def _db(server: Server) -> sqlite3.Connection:
    return open_database(server.data_dir)  # waits up to 10 s for the server's write lock


def _errors(body: str) -> list[str]:
    return re.findall(r'class="errors"[^>]*>([^<]+)', body)


def _field_error(body: str, name: str) -> str | None:
    """The error shown with the input named ``name`` (before the next input), unescaped."""
    start = body.index(f'name="{name}"')
    end = body.find(' name="', start + 1)
    m = re.search(r'class="errors" role="alert">([^<]+)<', body[start:end if end > 0 else None])
    return html.unescape(m.group(1)) if m else None


async def test_dashboard_shows_counts_and_health(admin: Client, web_api: Api) -> None:
    await web_api.setup("dash-co", type="webhook", mode="duplex",
                        config={"url": "http://127.0.0.1:9/x"})
    status, body, _ = await admin.get("/admin")
    assert status == 200
    for label in ("Tenants", "Channels", "Conversations", "Activities", "Channel health"):
        assert label in body
    assert re.search(r'data-count="tenants"><div class="n">[1-9]', body)
    assert "Unknown" in body  # a fresh external channel has no health check yet


async def test_tenant_life_cycle(admin: Client, web_api: Api) -> None:
    status, body, _ = await admin.post("/admin/tenants", {"name": "", "alert_webhook_url": "ftp://x"})
    assert status == 422
    assert "can&#39;t be blank" in body and "must be a valid HTTP or HTTPS URL" in body
    status, body, _ = await admin.post("/admin/tenants", {"name": "life"})
    key = re.search(r'id="once-value">([^<]+)<', body).group(1)
    tid = re.search(r'/admin/tenants/([0-9a-f-]{36})/rotate" data-confirm="Rotate the API key of life', body)
    assert tid, body
    tid = tid.group(1)
    status, _, _ = await admin.post(f"/admin/tenants/{tid}/webhook",
                                    {"alert_webhook_url": "https://alerts.example/x"})
    assert status == 302
    status, _, _ = await admin.post(f"/admin/tenants/{tid}/status", {"status": "inactive"})
    assert status == 302
    got = await web_api.ok("GET", f"/api/admin/tenants/{tid}", headers=web_api.admin)
    assert got["data"]["status"] == "inactive"
    assert got["data"]["alert_webhook_url"] == "https://alerts.example/x"
    # The key works until rotated (tenant active again first).
    await admin.post(f"/admin/tenants/{tid}/status", {"status": "active"})
    status, _, _ = await web_api.call("GET", "/api/v1/routing_rules", headers={"x-api-key": key})
    assert status == 200
    _, body, _ = await admin.post(f"/admin/tenants/{tid}/rotate", {})
    new_key = re.search(r'id="once-value">([^<]+)<', body).group(1)
    assert new_key != key
    status, _, _ = await web_api.call("GET", "/api/v1/routing_rules", headers={"x-api-key": key})
    assert status == 401
    # Deleting needs the confirmation.
    await admin.post(f"/admin/tenants/{tid}/delete", {})
    assert (await web_api.call("GET", f"/api/admin/tenants/{tid}", headers=web_api.admin))[0] == 200
    await admin.post(f"/admin/tenants/{tid}/delete", {"confirm": "yes"})
    assert (await web_api.call("GET", f"/api/admin/tenants/{tid}", headers=web_api.admin))[0] == 404
    _, body, _ = await admin.get("/admin/audit_logs?resource_type=tenant&action=rotate_key")
    assert tid[-8:] in body


async def test_channel_form_validations_and_actions(admin: Client, web_api: Api) -> None:
    t = await web_api.tenant("chan-forms")
    base = {"tenant_id": t["id"], "name": "c1", "type": "whatsapp_meta", "mode": "duplex"}
    status, body, _ = await admin.post("/admin/channels", base)
    assert status == 422 and any("whatsapp_meta config missing" in e for e in _errors(body))
    status, body, _ = await admin.post("/admin/channels", {**base, "type": "echo",
                                                           "mode": "duplex"})
    assert status == 422 and any("only support modes: outbound" in e for e in _errors(body))
    # Middleware steps are a form: each field refused with its own message, beside it, and
    # the rows drawn again as typed.
    hook = {**base, "type": "webhook", "config.webhook.url": "http://h.example"}
    status, body, _ = await admin.post("/admin/channels", {
        **hook, "steps.0.type": "add_prefix", "steps.0.prefix": "",
        "steps.1.type": "truncate_text", "steps.1.max_length": "0",
        "steps.2.type": "set_metadata", "steps.2.values": "source=web\nno equals sign",
        "steps.3.type": "unknown_step"})
    assert status == 422
    assert _field_error(body, "steps.0.prefix") == "can't be blank"
    assert _field_error(body, "steps.1.max_length") == "must be a whole number above 0"
    assert _field_error(body, "steps.2.values") == "line 2: write key=value"
    assert "choose a step type" in body
    assert 'name="steps.2.values" rows="3" aria-invalid="true">source=web\nno equals sign<' in body
    assert 'value="http://h.example"' in body  # the rest of the form is kept too
    status, body, _ = await admin.post("/admin/channels", {
        **hook, "steps.0.type": "add_prefix", "steps.0.prefix": "> ",
        "steps.7.type": "", "steps.7.prefix": "a removed row",
        "steps.9.type": "truncate_text", "steps.9.max_length": "160",
        "steps.12.type": "set_metadata", "steps.12.values": "source=web\npriority=2"})
    assert status == 201, _errors(body)
    cid = re.search(r'/admin/channels/([0-9a-f-]{36})/token', body).group(1)
    _, body, _ = await admin.post(f"/admin/channels/{cid}/token", {})
    token = re.search(r'id="once-value">([^<]+)<', body).group(1)
    conv = await web_api.conversation(token)  # the minted token works
    assert conv["id"]
    await admin.post(f"/admin/channels/{cid}/status", {"status": "inactive"})
    ch = await web_api.ok("GET", f"/api/admin/channels/{cid}", headers=web_api.admin)
    assert ch["data"]["status"] == "inactive"
    assert ch["data"]["transformations"] == [
        {"type": "add_prefix", "prefix": "> "}, {"type": "truncate_text", "max_length": 160},
        {"type": "set_metadata", "values": {"source": "web", "priority": 2}}]
    await admin.post(f"/admin/channels/{cid}/delete", {})
    assert (await web_api.call("GET", f"/api/admin/channels/{cid}", headers=web_api.admin))[0] == 404


async def test_routing_rules_with_validations(admin: Client, web_api: Api) -> None:
    t = await web_api.tenant("rules-co")
    src = await web_api.channel(t["id"], name="in", type="webhook", mode="inbound",
                                config={"url": "http://h.example"})
    dst = await web_api.channel(t["id"], name="out", type="webhook", mode="outbound",
                                config={"url": "http://h.example"})
    data: list[tuple[str, str]] = [("tenant_id", t["id"]), ("name", "r1"),
                                   ("source_channel_id", src["id"])]
    status, body, _ = await admin.post("/admin/routing_rules", data)
    assert status == 422 and _errors(body)  # no targets
    status, body, _ = await admin.post("/admin/routing_rules",
                                       data + [("target_channel_ids", src["id"])])
    assert status == 422 and _errors(body)  # the source as target; inbound target
    status, _, _ = await admin.post("/admin/routing_rules",
                                    data + [("target_channel_ids", dst["id"])])
    assert status == 302
    _, body, _ = await admin.get(f"/admin/routing_rules?tenant_id={t['id']}")
    rid = re.search(r'/admin/routing_rules/([0-9a-f-]{36})/toggle', body).group(1)
    assert "Enabled" in body
    await admin.post(f"/admin/routing_rules/{rid}/toggle", {})
    _, body, _ = await admin.get(f"/admin/routing_rules?tenant_id={t['id']}")
    assert "Disabled" in body
    await admin.post(f"/admin/routing_rules/{rid}/delete", {})
    _, body, _ = await admin.get(f"/admin/routing_rules?tenant_id={t['id']}")
    assert "No routing rules." in body


async def test_deliveries_filter_and_retry(admin: Client, web_api: Api, web_server: Server) -> None:
    s = await web_api.setup("deliv-co", type="webhook", mode="duplex",
                            config={"url": "http://127.0.0.1:9/never"})
    for i in range(3):
        await web_api.post_activity(s["conversation"]["id"], s["api_key"], text=f"m{i}")
    cid = s["channel"]["id"]
    # Three deliveries exist; make them failed as exhausted retries would (the workers are
    # another area's; this drives the page's retry path on its own).
    with _db(web_server) as conn:
        conn.execute("""UPDATE deliveries SET status = 'failed', attempts = 5,
                        last_error = 'webhook returned status 500: boom', claim_token = NULL
                        WHERE channel_id = ?""", (cid,))
    status, body, _ = await admin.get(f"/admin/deliveries?channel_id={cid}&status=failed")
    assert status == 200
    ids = re.findall(r'data-delivery="([0-9a-f-]{36})"', body)
    assert len(ids) == 3 and "webhook returned status 500: boom" in body
    status, _, headers = await admin.post(f"/admin/deliveries/{ids[0]}/retry",
                                          {"next": f"/admin/deliveries?channel_id={cid}"})
    assert status == 302 and headers["location"] == f"/admin/deliveries?channel_id={cid}"
    with _db(web_server) as conn:
        row = conn.execute("SELECT status, attempts FROM deliveries WHERE id = ?", (ids[0],)).fetchone()
    assert row[0] in ("pending", "sent", "failed") and (row[0] != "failed" or row[1] < 5)
    status, body, _ = await admin.get(f"/admin/deliveries?channel_id={cid}")
    assert "Retry all failed of this channel" in body
    await admin.post("/admin/deliveries/retry_failed", {"channel_id": cid})
    with _db(web_server) as conn:
        n = conn.execute("SELECT count(*) FROM deliveries WHERE channel_id = ? AND attempts = 5",
                         (cid,)).fetchone()[0]
    assert n == 0
    _, body, _ = await admin.get("/admin/audit_logs?action=retry_failed")
    assert cid[-8:] in body
    _, body, _ = await admin.get("/admin/audit_logs?resource_type=delivery&action=retry")
    assert ids[0][-8:] in body
    # Another tenant's filter shows none of them.
    other = await web_api.tenant("deliv-other")
    _, body, _ = await admin.get(f"/admin/deliveries?tenant_id={other['id']}")
    assert "No deliveries match." in body


async def test_conversations_filter_and_page(admin: Client, web_api: Api) -> None:
    s = await web_api.setup("conv-co")
    await web_api.post_activity(s["conversation"]["id"], s["api_key"], text="hello <b>there</b>")
    _, body, _ = await admin.get(f"/admin/conversations?tenant_id={s['tenant']['id']}")
    assert s["conversation"]["id"][-12:] in body
    _, body, _ = await admin.get(f"/admin/conversations?tenant_id={s['tenant']['id']}&status=closed")
    assert "No conversations match." in body
    status, body, _ = await admin.get(f"/admin/conversations/{s['conversation']['id']}")
    assert status == 200 and "hello &lt;b&gt;there&lt;/b&gt;" in body  # escaped
    status, data, _ = await web_api.call(
        "GET", f"/admin/conversations/{s['conversation']['id']}/timeline.json")
    assert "hello" not in str(data) and "Log in" in str(data)  # no session: the login page
    _, raw, _ = await admin.get(f"/admin/conversations/{s['conversation']['id']}/timeline.json")
    assert '"text":"hello <b>there</b>"' in raw
    status, _, headers = await admin.get("/admin/conversations/00000000-0000-4000-8000-000000000000")
    assert status == 302


def test_cli_admin_create_refuses_bad_input(web_server: Server) -> None:
    import subprocess
    import sys

    from tests.support.server import ROOT

    out = subprocess.run(
        [sys.executable, "-m", "gateway", "admin", "create", "--email", "x@example.com",
         "--name", "X", "--password-stdin", "--data-dir", str(web_server.data_dir)],
        input="short\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and "at least 8" in out.stderr




async def test_pages_are_self_contained_and_locked_down(admin: Client) -> None:
    status, body, headers = await admin.get("/admin")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    # Nothing from a CDN: every script, stylesheet and icon comes from this server.
    assert not re.search(r'(src|href)="(https?:)?//', body)
    for name, ctype in (("app.css", "text/css"), ("app.js", "javascript"),
                        ("favicon.svg", "image/svg+xml")):
        status, _, headers = await admin.get(f"/ui/static/{name}")
        assert status == 200 and ctype in headers["content-type"], name
    status, _, headers = await admin.get("/favicon.ico")
    assert status == 301 and headers["location"] == "/ui/static/favicon.svg"
    assert (await admin.get("/ui/static/nope.js"))[0] == 404


async def test_audit_log_pages_and_filters(admin: Client, web_api: Api) -> None:
    for i in range(51):
        await web_api.tenant(f"paged-{i:02d}")
    path = "/admin/audit_logs?actor_type=admin_token&resource_type=tenant&action=create"
    ids = re.compile(r'title="([0-9a-f-]{36})"')
    _, first, _ = await admin.get(path)
    assert first.count("<details>") == 50 and "Next page" in first and "First page" not in first
    nxt = re.search(r'href="([^"]*cursor=[^"]+)">Next page', first).group(1).replace("&amp;", "&")
    _, second, _ = await admin.get("/admin/audit_logs" + nxt)
    assert "First page" in second and second.count("<details>") >= 1
    assert not set(ids.findall(first)) & set(ids.findall(second))  # no entry on both pages
    assert "paged-00" in second and "paged-50" in first  # newest first


async def test_portal_retries_only_its_own_deliveries(admin: Client, web_api: Api,
                                                      web_server: Server) -> None:
    mine = await web_api.setup("retry-mine", type="webhook", mode="duplex",
                               config={"url": "http://127.0.0.1:9/x"})
    other = await web_api.setup("retry-other", type="webhook", mode="duplex",
                                config={"url": "http://127.0.0.1:9/x"})
    for s in (mine, other):
        await web_api.post_activity(s["conversation"]["id"], s["api_key"], text="x")
    with _db(web_server) as conn:
        conn.execute("UPDATE deliveries SET status = 'failed', attempts = 7, claim_token = NULL "
                     "WHERE tenant_id IN (?, ?)", (mine["tenant"]["id"], other["tenant"]["id"]))
        theirs = conn.execute("SELECT id FROM deliveries WHERE tenant_id = ?",
                              (other["tenant"]["id"],)).fetchone()[0]
    await admin.add_tenant_user({"tenant_id": mine["tenant"]["id"], "name": "M",
                                 "email": "m@mine.example", "password": "portal pass 1",
                                 "role": "member"})
    member = Client(web_server.url)
    try:
        assert await member.login("m@mine.example", "portal pass 1", "portal",
                                  tenant="retry-mine") == 302
        _, body, _ = await member.get("/portal/deliveries?status=failed")
        ids = re.findall(r'data-delivery="([0-9a-f-]{36})"', body)
        assert len(ids) == 1 and theirs not in ids and "Retry now" in body
        await member.post(f"/portal/deliveries/{ids[0]}/retry", {})
        await member.post(f"/portal/deliveries/{theirs}/retry", {})
        await member.post("/portal/deliveries/retry_failed",
                          {"channel_id": other["channel"]["id"]})
        with _db(web_server) as conn:
            rows = dict(conn.execute("SELECT id, attempts FROM deliveries WHERE id IN (?, ?)",
                                     (ids[0], theirs)).fetchall())
        assert rows[ids[0]] < 7 and rows[theirs] == 7
    finally:
        await member.close()


async def test_channel_page_shows_the_health_history(admin: Client, web_api: Api,
                                                     web_server: Server) -> None:
    t = await web_api.tenant("spark-co")
    c = await web_api.channel(t["id"], name="spark", type="webhook",
                              config={"url": "http://127.0.0.1:9/hook"})
    _, body, _ = await admin.get(f"/admin/channels/{c['id']}")
    assert 'id="health-history"' not in body  # never checked: no history
    with _db(web_server) as conn:
        for i, (status, rate) in enumerate([("healthy", 0.0), ("degraded", 0.2),
                                            ("unhealthy", 0.8)]):
            conn.execute(
                """INSERT INTO channel_health_checks (id, channel_id, tenant_id, status,
                       total_deliveries, failed_deliveries, failure_rate, checked_at, inserted_at)
                   VALUES (?, ?, ?, ?, 10, ?, ?, ?, ?)""",
                (f"spark-{i}", c["id"], t["id"], status, int(rate * 10), rate,
                 f"2026-01-01T00:0{i}:00.000Z", f"2026-01-01T00:0{i}:00.000Z"))
    _, body, _ = await admin.get(f"/admin/channels/{c['id']}")
    assert 'id="health-history"' in body
    assert body.count('<rect class="') == 3
    assert "1 healthy, 1 degraded, 1 unhealthy, 0 unknown" in body
    assert '<rect class="unhealthy"' in body


async def test_new_pages_escape_what_users_typed(admin: Client, web_api: Api,
                                                 web_server: Server) -> None:
    """Names, middleware values and invitation e-mails with markup are shown as text on the
    channel pages (admin and portal), the channels and routing lists (row menus, the no-source
    reason), the tenant users page (invitations) and the invitation link's page."""
    evil = '<script>alert(1)</script>'
    t = await web_api.tenant(f"t{evil}")
    ch = await web_api.channel(t["id"], name=f"c{evil}", type="webhook", mode="outbound",
                               config={"url": "http://127.0.0.1:9/x"},
                               transformations=[{"type": "add_prefix", "prefix": evil},
                                                {"type": "set_metadata", "values": {evil: evil}}])
    _, body, _ = await admin.get("/admin/tenant_users")
    status, body, _ = await admin.post("/admin/tenant_users/invites", {
        "tenant_id": t["id"], "email": f"x{evil}@evil.example", "role": "owner"})
    assert status == 201, _errors(body)
    link = re.search(r'id="once-value">([^<]+)<', body).group(1)  # type: ignore[union-attr]
    pages = {}
    for path in (f"/admin/channels/{ch['id']}", "/admin/channels", "/admin/routing_rules",
                 "/admin/tenant_users"):
        status, pages[path], _ = await admin.get(path)
        assert status == 200, path
    status, pages["test"], _ = await admin.post(f"/admin/channels/{ch['id']}/test", {})
    anon = Client(web_server.url)
    try:
        status, pages["invite"], _ = await anon.get(link.replace(web_server.url, ""))
        assert status == 200
        status, pages["accepted"], _ = await anon.post(link.replace(web_server.url, ""), {
            "name": evil, "password": "evil password 1", "confirm_password": "evil password 1"})
        assert status == 302
        status, pages["portal"], _ = await anon.get(f"/portal/channels/{ch['id']}")
        assert status == 200
    finally:
        await anon.close()
    for name, body in pages.items():
        assert evil not in body, name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[f"/admin/channels/{ch['id']}"]
    assert "No channel of t&lt;script&gt;" in pages["/admin/routing_rules"]
    assert "Join t&lt;script&gt;" in pages["invite"]
