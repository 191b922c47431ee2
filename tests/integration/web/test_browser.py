"""The admin panel and the portal in a real headless Chromium (Debian's, driven by Playwright)
against the real server: forms, the adaptive channel form, the live timeline, roles and tenant
isolation. One browser for the module; pages are reused."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.web.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    invite_in_browser,
    needs_chromium,
    signed_in,
)
from tests.support.api import Api
from tests.support.server import Server

SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"

pytestmark = needs_chromium


async def _login(browser: Any, base: str, email: str, password: str, area: str = "admin",
                 tenant: str | None = None) -> Any:
    return await signed_in(browser, base, email, password, area, tenant)


@pytest.fixture(scope="module")
async def page(browser: Any, web_server: Server) -> AsyncIterator[Any]:
    p = await _login(browser, web_server.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    yield p
    await p.context.close()


async def _has_delivery_workers(api: Api) -> bool:
    _, body, _ = await api.call("GET", "/readyz")
    return isinstance(body, dict) and any("deliver" in k for k in body.get("checks", {}))


async def test_login_create_a_tenant_and_a_channel_of_each_type(page: Any, web_server: Server) -> None:
    from playwright.async_api import expect

    base = web_server.url
    await expect(page.locator(".flash")).to_contain_text("Welcome back")
    await page.goto(base + "/admin/tenants")
    await page.fill("#tenant-form input[name=name]", "browser-co")
    await page.click("#tenant-form button[type=submit]")
    await expect(page.locator("#shown-once")).to_contain_text("API key of browser-co")
    key = (await page.text_content("#once-value")).strip()
    assert key.startswith("cvk_")
    await page.reload()  # shown once: gone on the next view
    assert key not in await page.content()

    await page.goto(base + "/admin/channels")
    form = page.locator("#channel-form")
    configs = {
        "webhook": {"url": "http://127.0.0.1:9/hook"},
        "whatsapp_meta": {"phone_number_id": "1234", "access_token": "meta-access-token",
                          "verify_token": "vt", "app_secret": "meta-app-secret"},
        "whatsapp_infobip": {"base_url": "https://infobip.example", "api_key": "ib-key",
                             "sender": "447000", "webhook_username": "ib-user",
                             "webhook_password": "ib-password"},
        "telegram": {"bot_token": "123456:AAE-browser", "secret_token": "browser-secret"},
        "slack": {"bot_token": "xoxb-browser", "signing_secret": "browser-signing"},
        "echo": {}, "websocket": {},
    }
    for kind, cfg in configs.items():
        await form.locator("select[name=tenant_id]").select_option(label="browser-co")
        await form.locator("input[name=name]").fill(f"b-{kind}")
        await form.locator("select[name=type]").select_option(kind)
        # The form adapts: the modes the type supports, its own config inputs.
        modes = await form.locator("select[name=mode] option").all_text_contents()
        assert modes == (["outbound"] if kind in ("echo", "websocket")
                         else ["inbound", "outbound", "duplex"]), (kind, modes)
        for key_name, value in cfg.items():
            await form.locator(f"input[name='config.{kind}.{key_name}']").fill(value)
        if kind in ("telegram", "slack"):
            await form.locator("select[name=mode]").select_option("duplex")
        if kind == "telegram":  # each input of the shown type says where its value comes from
            await expect(form.locator("[data-config-for=telegram]")).to_contain_text("@BotFather")
            await expect(form.locator("[data-config-for=slack]")).to_be_hidden()
        await form.locator("button[type=submit]").click()
        await expect(page.locator(".flash").first).to_contain_text("Channel created")
        await expect(page.locator("#shown-once")).to_contain_text(f"b-{kind}")
        form = page.locator("#channel-form")
    # Middleware steps are a form: a row per step, the inputs of its type.
    await form.locator("select[name=tenant_id]").select_option(label="browser-co")
    await form.locator("input[name=name]").fill("b-steps")
    await form.locator("select[name=type]").select_option("websocket")
    for kind, key, value in (("add_prefix", "prefix", "[bot] "),
                             ("truncate_text", "max_length", "160")):
        await form.locator("[data-step-add]").click()
        row = form.locator("[data-step]").last
        await row.locator("select[data-step-type]").select_option(kind)
        # Only the chosen type's inputs show.
        await expect(row.locator(f"[data-step-field={kind}]").first).to_be_visible()
        await expect(row.locator("[data-step-field=content_filter]")).to_be_hidden()
        await row.locator(f"[name$='.{key}']").fill(value)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("tr[data-channel='b-steps'] td").nth(7)).to_have_text("2")

    await page.goto(base + "/admin/channels")
    for kind in configs:
        await expect(page.locator(f"tr[data-channel='b-{kind}']")).to_have_count(1)
    content = await page.content()
    assert "meta-access-token" not in content and "browser-signing" not in content
    await expect(page.locator("tr[data-channel='b-telegram'] .inbound-url")).to_contain_text(
        "/api/v1/channels/")


async def test_conversation_timeline_updates_live(page: Any, web_server: Server,
                                                  web_api: Api) -> None:
    from playwright.async_api import expect

    s = await web_api.setup("live-co")
    await page.goto(f"{web_server.url}/admin/conversations/{s['conversation']['id']}")
    await expect(page.locator("#timeline")).to_contain_text("No activities yet")
    await web_api.post_activity(s["conversation"]["id"], s["api_key"], text="first live message",
                                sender="alice")
    await expect(page.locator("#timeline")).to_contain_text("first live message", timeout=5000)
    await web_api.post_activity(s["conversation"]["id"], s["api_key"], text="second one",
                                sender="bob")
    await expect(page.locator("#timeline tbody tr")).to_have_count(2, timeout=5000)
    await expect(page.locator("#timeline")).to_contain_text("bob")


async def test_viewer_cannot_change_anything(browser: Any, page: Any, web_server: Server,
                                             web_api: Api) -> None:
    from playwright.async_api import expect

    base = web_server.url
    await page.goto(base + "/admin/users")
    form = page.locator("#admin-user-form")
    await form.locator("input[name=name]").fill("Browser Viewer")
    await form.locator("input[name=email]").fill("bviewer@example.com")
    await form.locator("input[name=password]").fill("viewer password")
    await form.locator("select[name=role]").select_option("viewer")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("tr[data-user='bviewer@example.com']")).to_have_count(1)
    t = await web_api.tenant("viewer-target")

    viewer = await _login(browser, base, "bviewer@example.com", "viewer password")
    try:
        for path in ("/admin/tenants", "/admin/channels", "/admin/deliveries", "/admin/users"):
            await viewer.goto(base + path)
            # Only the logout form posts anything.
            await expect(viewer.locator("form[method=post]")).to_have_count(1)
            await expect(viewer.locator("text=Create tenant")).to_have_count(0)
        # Forged from the page itself, with the right CSRF token: still refused.
        status = await viewer.evaluate(
            """async (tid) => {
                const csrf = document.querySelector('input[name=_csrf]').value;
                const body = new URLSearchParams({_csrf: csrf, status: 'inactive'});
                const r = await fetch('/admin/tenants/' + tid + '/status', {method: 'POST', body});
                return r.status;
            }""", t["id"])
        assert status == 403
        now = await web_api.ok("GET", f"/api/admin/tenants/{t['id']}", headers=web_api.admin)
        assert now["data"]["status"] == "active"
    finally:
        await viewer.context.close()


async def test_portal_user_cannot_reach_another_tenants_conversation(
    browser: Any, page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    base = web_server.url
    a = await web_api.setup("tenant-a")
    b = await web_api.setup("tenant-b")
    await invite_in_browser(browser, page, base, tenant="tenant-a", email="ada@a.example",
                            role="owner", name="Ada", password="ada password")
    await page.goto(base + "/admin/tenant_users")
    await expect(page.locator("tr[data-user='ada@a.example']")).to_have_count(1)

    portal = await _login(browser, base, "ada@a.example", "ada password", "portal", "tenant-a")
    try:
        await portal.goto(f"{base}/portal/conversations/{a['conversation']['id']}")
        await expect(portal.locator("#timeline")).to_be_visible()
        await web_api.post_activity(a["conversation"]["id"], a["api_key"], text="portal live")
        await expect(portal.locator("#timeline")).to_contain_text("portal live", timeout=5000)
        await portal.goto(f"{base}/portal/conversations/{b['conversation']['id']}")
        assert portal.url == f"{base}/portal/conversations"
        await expect(portal.locator(".flash")).to_contain_text("Conversation not found")
        assert b["conversation"]["id"][-12:] not in await portal.content()
    finally:
        await portal.context.close()


# -- these need the delivery workers (another area); they light up once /readyz reports them ---
@pytest.fixture
async def receiver() -> AsyncIterator[dict[str, Any]]:
    """A webhook receiver whose answer the test controls."""
    state: dict[str, Any] = {"status": 200, "hits": []}

    async def hook(request: web.Request) -> web.Response:
        state["hits"].append(await request.json())
        return web.Response(status=state["status"], text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    yield state
    await runner.cleanup()


async def test_delivery_tick_advances_when_a_receipt_arrives(
    page: Any, web_server: Server, web_api: Api, receiver: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    assert await _has_delivery_workers(web_api), "/readyz reports no delivery workers"
    s = await web_api.setup("ticks-co", type="webhook", mode="duplex",
                            config={"url": receiver["url"], "allow_unsigned": True})
    conv = s["conversation"]["id"]
    await page.goto(f"{web_server.url}/admin/conversations/{conv}")
    await web_api.post_activity(conv, s["api_key"], text="tick me")
    await expect(page.locator("#timeline [data-status=sent]")).to_have_count(1, timeout=8000)
    async with aiohttp.ClientSession() as http, http.get(
        f"{web_server.url}/api/admin/deliveries?channel_id={s['channel']['id']}",
        headers=web_api.admin,
    ) as r:
        listed = (await r.json()).get("data", []) if r.status == 200 else []
    delivery_id = (listed[0]["id"] if listed
                   else receiver["hits"][0].get("delivery_id") or receiver["hits"][0].get("id"))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{web_server.url}/api/v1/channels/{s['channel']['id']}/status",
                             json={"delivery_id": delivery_id, "status": "delivered"}) as r:
            assert r.status == 200, await r.text()
    await expect(page.locator("#timeline [data-status=delivered]")).to_have_count(1, timeout=5000)


async def test_retry_a_failed_delivery_until_it_succeeds(
    page: Any, web_server: Server, web_api: Api, receiver: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    assert await _has_delivery_workers(web_api), "/readyz reports no delivery workers"
    receiver["status"] = 410  # Gone: never retried, so failed at once
    s = await web_api.setup("retry-co", type="webhook", mode="duplex",
                            config={"url": receiver["url"]})
    await web_api.post_activity(s["conversation"]["id"], s["api_key"], text="retry me")
    url = f"{web_server.url}/admin/deliveries?channel_id={s['channel']['id']}"
    row = page.locator("#deliveries tbody tr").first
    for _ in range(40):
        await page.goto(url)
        if await page.locator("#deliveries [data-status=failed]").count():
            break
        await page.wait_for_timeout(250)
    await expect(row.locator("[data-status=failed]")).to_have_count(1)
    receiver["status"] = 200
    await row.locator("button", has_text="Retry now").click()
    await expect(page.locator(".flash").first).to_contain_text("queued for retry")
    for _ in range(40):
        await page.goto(url)
        if await page.locator("#deliveries [data-status=sent]").count():
            break
        await page.wait_for_timeout(250)
    await expect(page.locator("#deliveries [data-status=sent]")).to_have_count(1)


@pytest.mark.skipif(not os.environ.get("CONVERGER_SCREENSHOTS"),
                    reason="set CONVERGER_SCREENSHOTS=1 to refresh docs/screenshots")
async def test_screenshots(browser: Any, tmp_path: Path) -> None:
    """docs/screenshots/*.png from a server of its own with a little made-up traffic."""
    import sqlite3

    from tests.integration.web.conftest import create_admin

    create_admin(tmp_path, "ops@northwind.example", "screenshot pw")
    srv = Server(tmp_path).start()
    # A loopback receiver for the test event (answers 200).
    receiver = web.Application()

    async def take(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    receiver.router.add_post("/hook", take)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(http, srv.url)
            shop = await api.setup("Northwind", type="websocket")
            await api.tenant("Acme Corp")
            hook = await api.channel(shop["tenant"]["id"], name="crm-webhook", type="webhook",
                                     mode="duplex", config={"url": hook_url},
                                     transformations=[
                                         {"type": "add_prefix", "prefix": "[shop] "},
                                         {"type": "set_metadata", "values": {"source": "shop"}}])
            wa = await api.channel(shop["tenant"]["id"], name="whatsapp", type="whatsapp_meta",
                                   mode="duplex", config={
                                       "phone_number_id": "1065", "access_token": "x",
                                       "verify_token": "northwind-verify-7c1e",
                                       "app_secret": "meta-app-secret"},
                                   transformations=[{"type": "truncate_text", "max_length": 1000}])
            await api.ok("POST", "/api/admin/tenant_users", 201, headers=api.admin, json={
                "tenant_id": shop["tenant"]["id"], "email": "owner@northwind.example",
                "name": "Olga", "role": "owner", "password": "northwind owner pw"})
            tok = await api.channel_token(hook["id"])
            conv = await api.conversation(tok)
            lines = [("customer-42", "Hi! Is my order #1881 on its way?"),
                     ("agent-bot", "Let me check that for you."),
                     ("agent-bot", "It left the warehouse this morning and arrives tomorrow."),
                     ("customer-42", "Great, thanks!"), ("agent-bot", "Anything else I can do?")]
            for i, (who, text) in enumerate(lines):
                meta = {"profile_name": "Maria Garcia"} if who == "customer-42" else {}
                await api.post_activity(conv["id"], shop["api_key"], text=text, sender=who,
                                        key=f"shot-{i}", metadata=meta)
        conn = sqlite3.connect(tmp_path / "converger.db", timeout=10, isolation_level=None)
        rows = conn.execute("SELECT d.id FROM deliveries d JOIN activities a ON a.id = d.activity_id"
                            " WHERE d.conversation_id = ? ORDER BY a.seq", (conv["id"],)).fetchall()
        failed_id = None
        for (did,), status in zip(rows, ("read", "read", "delivered", "sent", "failed"), strict=False):
            conn.execute("UPDATE deliveries SET status = ?, attempts = ?, last_error = ? WHERE id = ?",
                         (status, 5 if status == "failed" else 1,
                          "webhook returned status 503: upstream unavailable"
                          if status == "failed" else None, did))
            if status == "failed":
                failed_id = did
                for n, wait in enumerate((0, 30, 120, 390, 1200), start=1):
                    conn.execute(
                        """INSERT INTO delivery_attempts (delivery_id, tenant_id, attempt, at, ok,
                               status, error, duration_ms) VALUES (?, ?, ?, ?, 0, ?, ?, ?)""",
                        (did, shop["tenant"]["id"], n, f"2026-11-25T09:{wait // 60:02d}:{wait % 60:02d}.000Z",
                         "failed" if n == 5 else "will retry",
                         "webhook returned status 503: upstream unavailable "
                         '{"error": "database maintenance, retry later"}', 180 + 37 * n))
        conn.execute("""INSERT INTO channel_health_checks (id, channel_id, tenant_id, status,
                        total_deliveries, failed_deliveries, failure_rate, checked_at, inserted_at)
                        VALUES ('h1', ?, ?, 'degraded', 5, 1, 0.2, '2026-11-25T09:00:00Z',
                                '2026-11-25T09:00:00Z')""", (hook["id"], shop["tenant"]["id"]))
        body = ('{"event":"channel_health_changed","previous_status":"healthy",'
                '"new_status":"degraded"}')
        conn.execute("""INSERT INTO alerts (id, tenant_id, channel_id, event, url, body, status,
                        attempts, sent_at, inserted_at, updated_at)
                        VALUES ('a1', ?, ?, 'channel_health_changed', 'https://ops.example/alerts',
                                ?, 'sent', 1, '2026-11-25T09:00:01Z', '2026-11-25T09:00:00Z',
                                '2026-11-25T09:00:01Z')""",
                     (shop["tenant"]["id"], hook["id"], body))
        conn.close()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page = await _login(browser, srv.url, "ops@northwind.example", "screenshot pw")
        await page.goto(srv.url + "/admin")
        await page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/conversations/{conv['id']}")
        await page.wait_for_selector("#timeline tbody tr[data-activity]")
        await page.screenshot(path=str(SHOTS / "conversation.png"), full_page=True)
        await page.goto(srv.url + "/admin/deliveries")
        await page.screenshot(path=str(SHOTS / "deliveries.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/channels/{wa['id']}")
        await page.screenshot(path=str(SHOTS / "channel.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/deliveries/{failed_id}")
        await page.screenshot(path=str(SHOTS / "delivery.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/conversations?q=maria")
        await page.screenshot(path=str(SHOTS / "conversations.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/channels")
        await page.locator("tr[data-channel='crm-webhook'] summary").click()
        await page.screenshot(path=str(SHOTS / "channels.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/tenant_users")
        form = page.locator("#tenant-user-form")
        await form.locator("select[name=tenant_id]").select_option(label="Northwind")
        await form.locator("input[name=email]").fill("sam@northwind.example")
        await form.locator("select[name=role]").select_option("member")
        await form.locator("button[type=submit]").click()
        await page.wait_for_selector("#shown-once")
        link = (await page.locator("#once-value").text_content() or "").strip()
        await page.screenshot(path=str(SHOTS / "tenant-users.png"), full_page=True)
        await page.context.close()
        invited = await browser.new_context(viewport={"width": 1360, "height": 900})
        page = await invited.new_page()
        await page.goto(link)
        await page.fill("#invite-form input[name=name]", "Sam")
        await page.screenshot(path=str(SHOTS / "invite.png"), full_page=True)
        await invited.close()
        page = await _login(browser, srv.url, "owner@northwind.example", "northwind owner pw",
                            "portal", "northwind")
        await page.goto(f"{srv.url}/portal/channels/{hook['id']}")
        await page.get_by_role("button", name="Send test event").click()
        await page.wait_for_selector("#test-result .result")
        await page.screenshot(path=str(SHOTS / "portal-channel.png"), full_page=True)
        await page.context.close()
        # The same on a phone (390×844): the menu collapses, tables scroll inside their card.
        phone = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await phone.new_page()
        await page.goto(srv.url + "/admin/login")
        await page.fill("input[name=email]", "ops@northwind.example")
        await page.fill("input[name=password]", "screenshot pw")
        await page.click("button[type=submit]")
        await page.wait_for_url(srv.url + "/admin")
        await page.screenshot(path=str(SHOTS / "phone-dashboard.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/conversations/{conv['id']}")
        await page.wait_for_selector("#timeline tbody tr[data-activity]")
        await page.screenshot(path=str(SHOTS / "phone-conversation.png"), full_page=True)
        await page.click("button.menu-toggle")
        await page.screenshot(path=str(SHOTS / "phone-menu.png"))
        await page.goto(f"{srv.url}/admin/channels/{hook['id']}")
        await page.screenshot(path=str(SHOTS / "phone-channel.png"), full_page=True)
        await page.goto(f"{srv.url}/admin/channels")
        await page.locator("tr[data-channel='crm-webhook'] summary").click()
        await page.screenshot(path=str(SHOTS / "phone-channels.png"))
        await phone.close()
    finally:
        srv.stop()
        await runner.cleanup()
