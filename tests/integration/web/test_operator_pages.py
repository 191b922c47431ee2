"""What an operator reads in the admin panel, in a real headless Chromium against the real
server with loopback aiohttp receivers (issue 23): the timeline's one status per target, the
conversations search, a delivery's attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.integration.web.conftest import needs_chromium
from tests.support.api import Api
from tests.support.server import Server

pytestmark = needs_chromium


@pytest.fixture
async def receivers() -> AsyncIterator[str]:
    """``/ok`` takes every delivery; ``/gone`` answers 410 (failed at once, never retried);
    ``/down`` answers 500 (retried: failed after five attempts)."""
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200, text="ok")

    async def gone(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=410, text="number no longer on WhatsApp")

    async def down(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="upstream database unavailable")

    app = web.Application()
    app.router.add_post("/down", down)
    app.router.add_post("/ok", ok)
    app.router.add_post("/gone", gone)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


async def _two_targets(api: Api, name: str, base: str) -> dict[str, Any]:
    """A tenant whose "WhatsApp" channel (its receiver refuses) routes to a "CRM" (takes all)."""
    t = await api.tenant(name)
    wa = await api.channel(t["id"], name="WhatsApp", type="webhook", mode="duplex",
                           config={"url": base + "/gone"})
    crm = await api.channel(t["id"], name="CRM", type="webhook", mode="outbound",
                            config={"url": base + "/ok"})
    await api.ok("POST", "/api/v1/routing_rules", 201, headers={"x-api-key": t["api_key"]},
                 json={"routing_rule": {"name": "copy to crm", "source_channel_id": wa["id"],
                                        "target_channel_ids": [crm["id"]]}})
    conv = await api.conversation(await api.channel_token(wa["id"]))
    return {"tenant": t, "api_key": t["api_key"], "wa": wa, "crm": crm, "conversation": conv}


async def test_timeline_shows_each_targets_status(
    admin_page: Any, web_server: Server, web_api: Api, receivers: str
) -> None:
    from playwright.async_api import expect

    page = admin_page
    w = await _two_targets(web_api, "timeline-co", receivers)
    conv = w["conversation"]["id"]
    await web_api.post_activity(conv, w["api_key"], text="your order shipped",
                                sender="16505550199", metadata={"profile_name": "Ada Lovelace"})
    await page.goto(f"{web_server.url}/admin/conversations/{conv}")
    row = page.locator("#timeline tbody tr").first
    # Live: the failed target's ✗ next to the delivered one's ✓, each with its word.
    await expect(row.locator("[data-target=WhatsApp] [data-status=failed]")).to_have_count(
        1, timeout=10000)
    await expect(row.locator("[data-target=CRM] [data-status=sent]")).to_have_count(
        1, timeout=10000)
    await expect(row.locator("[data-target=WhatsApp]")).to_contain_text("✗ failed")
    await expect(row.locator("[data-target=CRM]")).to_contain_text("✓ sent")
    await expect(row).to_contain_text("Ada Lovelace")  # the contact's name as sender
    # The error one click away.
    await row.locator("[data-target=WhatsApp] summary").click()
    await expect(row.locator("[data-target=WhatsApp] details")).to_contain_text("410")
    # The row links to its deliveries: both targets, and counts for just these.
    await row.get_by_role("link", name="Deliveries of message #1").click()
    await expect(page.locator("#deliveries tbody tr")).to_have_count(2)
    await expect(page.locator("#deliveries")).to_contain_text("WhatsApp")
    await expect(page.locator("#deliveries")).to_contain_text("CRM")


async def test_search_finds_a_conversation_by_the_contacts_name(
    admin_page: Any, web_server: Server, web_api: Api
) -> None:
    from playwright.async_api import expect

    page = admin_page
    s = await web_api.setup("search-co")
    quiet = await web_api.conversation(s["channel_token"])
    await web_api.post_activity(quiet["id"], s["api_key"], text="nothing to see",
                                sender="15550001")
    busy = s["conversation"]["id"]
    await web_api.post_activity(busy, s["api_key"], text="where is my parcel?",
                                sender="15550002", metadata={"profile_name": "Grace Hopper"})
    await page.goto(f"{web_server.url}/admin/conversations?tenant_id={s['tenant']['id']}")
    # Newest activity first, contact and last message on each row, the total.
    rows = page.locator("#conversations tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("Grace Hopper")
    await expect(rows.first).to_contain_text("where is my parcel?")
    await expect(page.locator("#conversations-total")).to_contain_text("2 conversations")
    for query in ("grace hop", "parcel", busy[-12:]):
        await page.fill("input[name=q]", query)
        await page.click("form[role=search] button[type=submit]")
        await expect(rows).to_have_count(1)
        await expect(page.locator(f"tr[data-conversation='{busy}']")).to_have_count(1)
        await expect(page.locator("#conversations-total")).to_contain_text("1 conversation")
    # The filters survive: the tenant is still chosen, the query still there.
    assert f"tenant_id={s['tenant']['id']}" in page.url and "q=" in page.url


async def test_delivery_page_lists_every_attempt_and_retry_all_says_how_many(
    admin_page: Any, web_server: Server, web_api: Api, receivers: str
) -> None:
    from playwright.async_api import expect

    page = admin_page
    s = await web_api.setup("attempts-co", type="webhook", mode="duplex",
                            config={"url": receivers + "/down"})
    for text in ("first", "second"):
        await web_api.post_activity(s["conversation"]["id"], s["api_key"], text=text)
    url = f"{web_server.url}/admin/deliveries?channel_id={s['channel']['id']}&status=failed"
    rows = page.locator("#deliveries tbody tr[data-delivery]")
    for _ in range(80):  # retried at 1/1000 of the real backoff: about a second
        await page.goto(url)
        if await rows.count() == 2:
            break
        await page.wait_for_timeout(250)
    await expect(rows).to_have_count(2)
    # Counts follow the filters: this channel's two, not every tenant's.
    await expect(page.locator("a.stat", has_text="failed").locator(".n")).to_have_text("2")
    await rows.first.get_by_role("link", name="Attempts of the delivery").click()
    attempts = page.locator("#attempts tbody tr[data-attempt]")
    await expect(attempts).to_have_count(5)
    await expect(attempts.first).to_contain_text("will retry")
    await expect(attempts.last).to_contain_text("failed")
    await expect(attempts.last).to_contain_text("500")
    await expect(attempts.last).to_contain_text("ms")
    # Local time with its zone (the browser's zone: UTC here) instead of a bare UTC string.
    shown = await attempts.first.locator("time").text_content() or ""
    assert "UTC" in shown or "GMT" in shown, shown

    # Retry all failed under the filter: the confirmation says how many.
    messages: list[str] = []
    page.on("dialog", lambda d: messages.append(d.message))
    await page.goto(url)
    await page.click("#retry-all")
    await expect(page.locator(".flash").first).to_contain_text("2 failed deliveries queued")
    assert messages and "Retry 2 failed deliveries of this channel" in messages[-1], messages


async def test_health_is_checked_as_soon_as_failures_begin(
    web_server: Server, web_api: Api, receivers: str
) -> None:
    """The periodic check runs every 5 minutes; the first failures trigger one at once."""
    import asyncio
    import time

    s = await web_api.setup("early-health-co", type="webhook", mode="duplex",
                            config={"url": receivers + "/gone"})
    await web_api.post_activity(s["conversation"]["id"], s["api_key"], text="to a dead number")
    deadline = time.monotonic() + 20  # far below the 300 s interval
    status = None
    while time.monotonic() < deadline:
        listed = await web_api.ok("GET", "/api/admin/health", headers=web_api.admin)
        status = next((h["status"] for h in listed["data"]
                       if h["channel_id"] == s["channel"]["id"]), None)
        if status == "unhealthy":
            break
        await asyncio.sleep(0.1)
    assert status == "unhealthy"
