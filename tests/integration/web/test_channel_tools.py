"""A channel's tools in a real headless Chromium against the real server, with loopback aiohttp
receivers (issue 23): "Send test event" shows delivered, or failed with the receiver's answer;
the portal's channel page (edit by owners and admins, read by the others, another tenant's
channel not there); the row actions menu by keyboard; the routing-rule form saying why there
is no source channel; every config input saying where the provider's console shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.integration.web.conftest import Client, needs_chromium, signed_in
from tests.support.api import Api
from tests.support.server import Server

pytestmark = needs_chromium


@pytest.fixture
async def receiver() -> AsyncIterator[dict[str, Any]]:
    """``/ok`` takes a post (kept in ``got``); ``/down`` answers 503."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def ok(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=200, text="ok")

    async def down(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/down", down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield {"url": f"http://127.0.0.1:{port}", "got": got}
    await runner.cleanup()


async def _tenant_user(api: Api, tenant_id: str, email: str, role: str) -> None:
    await api.ok("POST", "/api/admin/tenant_users", 201, headers=api.admin, json={
        "tenant_id": tenant_id, "email": email, "name": role.title(), "role": role,
        "password": f"{role} password 123"})


async def test_send_test_event_shows_delivered_or_the_receivers_answer(
    admin_page: Any, web_server: Server, web_api: Api, receiver: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    page, base = admin_page, web_server.url
    t = await web_api.tenant("test-event-co")
    good = await web_api.channel(t["id"], name="crm", type="webhook", mode="outbound",
                                 config={"url": receiver["url"] + "/ok"},
                                 transformations=[{"type": "add_prefix", "prefix": "[t] "}])
    bad = await web_api.channel(t["id"], name="erp", type="webhook", mode="outbound",
                                config={"url": receiver["url"] + "/down"})

    await page.goto(f"{base}/admin/channels/{good['id']}")
    await page.get_by_role("button", name="Send test event").click()
    result = page.locator("#test-result")
    await expect(result).to_contain_text("Delivered")
    # The receiver got it signed, through the channel's middleware.
    assert len(receiver["got"]) == 1
    headers, body = receiver["got"][0]
    assert b"[t] Test event from converger for channel crm" in body
    assert "webhook-signature" in {k.lower() for k in headers}

    await page.goto(f"{base}/admin/channels/{bad['id']}")
    await page.get_by_role("button", name="Send test event").click()
    await expect(result).to_contain_text("Failed")
    await expect(result.locator(".answer")).to_have_text("webhook returned status 503")
    # Nothing was stored: no conversation, no delivery.
    deliveries = await web_api.ok("GET", f"/api/admin/deliveries?tenant_id={t['id']}",
                                  headers=web_api.admin)
    assert deliveries["data"] == []


async def test_portal_channel_page_edit_test_and_roles(
    browser: Any, web_server: Server, web_api: Api, receiver: dict[str, Any]
) -> None:
    from playwright.async_api import expect

    base = web_server.url
    mine = await web_api.tenant("portal-chan-co")
    other = await web_api.tenant("portal-chan-other")
    hook = await web_api.channel(mine["id"], name="hook", type="webhook", mode="duplex",
                                 config={"url": receiver["url"] + "/ok"})
    theirs = await web_api.channel(other["id"], name="theirs", type="webhook", mode="duplex",
                                   config={"url": receiver["url"] + "/ok"})
    for role in ("owner", "member"):
        await _tenant_user(web_api, mine["id"], f"{role}@portal-chan.example", role)

    owner = await signed_in(browser, base, "owner@portal-chan.example", "owner password 123",
                            "portal", "portal-chan-co")
    try:
        await owner.goto(base + "/portal/channels")
        await owner.get_by_role("link", name="hook").click()
        await expect(owner).to_have_url(f"{base}/portal/channels/{hook['id']}")
        # Connect panel and the callback URL, as in the admin panel.
        await expect(owner.locator(f"#callback-{hook['id']}")).to_contain_text(
            f"/api/v1/channels/{hook['id']}/inbound")
        form = owner.locator("#channel-edit-form")
        await form.locator("input[name=name]").fill("hook-renamed")
        await form.locator("[data-step-add]").click()
        row = form.locator("[data-step]").last
        await row.locator("select[data-step-type]").select_option("add_suffix")
        await row.locator("[name$='.suffix']").fill(" -- portal")
        await form.locator("button[type=submit]").click()
        await expect(owner.locator(".flash").first).to_contain_text("Channel saved")
        await expect(owner.locator("h1")).to_have_text("Channel hook-renamed")
        await owner.get_by_role("button", name="Send test event").click()
        await expect(owner.locator("#test-result")).to_contain_text("Delivered")
        assert receiver["got"][-1][1].count(b"for channel hook-renamed -- portal") == 1
        # Another tenant's channel is not there.
        await owner.goto(f"{base}/portal/channels/{theirs['id']}")
        await expect(owner).to_have_url(f"{base}/portal/channels")
        await expect(owner.locator(".flash.error")).to_contain_text("Channel not found")
    finally:
        await owner.context.close()
    stored = await web_api.ok("GET", f"/api/admin/channels/{theirs['id']}", headers=web_api.admin)
    assert stored["data"]["name"] == "theirs"

    # A member reads the page and may send a test event, but changes no setting.
    member = await signed_in(browser, base, "member@portal-chan.example", "member password 123",
                             "portal", "portal-chan-co")
    try:
        await member.goto(f"{base}/portal/channels/{hook['id']}")
        await expect(member.locator("h1")).to_have_text("Channel hook-renamed")
        await expect(member.locator("#channel-edit-form")).to_have_count(0)
        await expect(member.get_by_role("button", name="Send test event")).to_be_visible()
    finally:
        await member.context.close()
    client = Client(base)
    try:
        assert await client.login("member@portal-chan.example", "member password 123", "portal",
                                  "portal-chan-co") == 302
        await client.get(f"/portal/channels/{hook['id']}")
        status, _, _ = await client.post(f"/portal/channels/{hook['id']}",
                                         {"name": "by-member", "mode": "duplex"})
        assert status == 403
        status, _, _ = await client.post(f"/portal/channels/{hook['id']}/verify_token", {})
        assert status == 403
    finally:
        await client.close()
    stored = await web_api.ok("GET", f"/api/admin/channels/{hook['id']}", headers=web_api.admin)
    assert stored["data"]["name"] == "hook-renamed"


async def test_row_actions_menu_by_keyboard(
    admin_page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    page, base = admin_page, web_server.url
    t = await web_api.tenant("menu-co")
    await web_api.channel(t["id"], name="menu-chan", type="webhook", mode="outbound",
                          config={"url": "http://127.0.0.1:9/x"})
    await page.goto(f"{base}/admin/channels?tenant_id={t['id']}")
    row = page.locator("tr[data-channel='menu-chan']")
    disable = row.get_by_role("button", name="Disable channel menu-chan")
    await expect(disable).to_be_hidden()
    summary = row.locator("summary")
    await expect(summary).to_have_attribute("aria-label", "Actions for channel menu-chan")
    await summary.focus()
    await page.keyboard.press("Enter")
    await expect(disable).to_be_visible()
    await page.keyboard.press("Tab")  # into the menu: its first item
    await expect(row.get_by_role("link", name="Edit channel menu-chan")).to_be_focused()
    await page.keyboard.press("Escape")  # closed, and back on its button
    await expect(disable).to_be_hidden()
    await expect(summary).to_be_focused()
    await page.keyboard.press("Space")
    await disable.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".flash").first).to_contain_text("Status updated")
    await expect(page.locator("tr[data-channel='menu-chan'] .pill")).to_have_text("inactive")


async def test_routing_rule_form_says_why_there_is_no_source(
    admin_page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    page, base = admin_page, web_server.url
    t = await web_api.tenant("no-source-co")
    await web_api.channel(t["id"], name="only-out", type="webhook", mode="outbound",
                          config={"url": "http://127.0.0.1:9/x"})
    empty = await web_api.tenant("no-channels-co")
    await page.goto(base + "/admin/routing_rules")
    form = page.locator("#rule-form")
    reason = form.locator(f".no-source[data-tenant='{t['id']}']")
    await expect(reason).to_be_hidden()
    await form.locator("select[name=tenant_id]").select_option(label="no-source-co")
    await expect(reason).to_be_visible()
    await expect(reason).to_contain_text("No channel of no-source-co can be the source")
    await expect(reason).to_contain_text("only-out (outbound)")
    await expect(reason.get_by_role("link", name="only-out")).to_have_count(1)
    await form.locator("select[name=tenant_id]").select_option(label="no-channels-co")
    await expect(reason).to_be_hidden()
    await expect(form.locator(f".no-source[data-tenant='{empty['id']}']")).to_contain_text(
        "has no channels yet")


async def test_config_inputs_say_where_the_console_shows_them(
    admin_page: Any, web_server: Server
) -> None:
    from playwright.async_api import expect

    page = admin_page
    await page.goto(web_server.url + "/admin/channels")
    form = page.locator("#channel-form")
    expected = {"whatsapp_meta": "API Setup", "whatsapp_infobip": "API keys",
                "telegram": "@BotFather", "slack": "OAuth & Permissions",
                "sms_twilio": "Twilio Console", "sms_vonage": "API Settings",
                "email_sendgrid": "Inbound Parse", "webhook": "receiver"}
    for kind, hint in expected.items():
        await form.locator("select[name=type]").select_option(kind)
        box = form.locator(f"[data-config-for={kind}]")
        await expect(box).to_contain_text(hint)
        # Every input of a provider's type carries a line of help.
        labels = box.locator("label")
        for i in range(await labels.count()):
            await expect(labels.nth(i).locator("small.help")).to_have_count(1)
