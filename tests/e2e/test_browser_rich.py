"""converger.js in headless Chromium, from the demo page: delivery_status ticks arrive for a
sent message (its conversation's channel delivers to a loopback webhook receiver), a template
activity is shown as one, typing is shown apart from the messages, and in Converger mode an
image is uploaded and sent with sendAttachment; in Converger mode, a WhatsApp customer's image
shows its background download (attachment_status) and a reply its delivery tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import expect

from tests.e2e.test_browser_client import (
    CHROMIUM,
    browser,  # noqa: F401 (the module's Chromium)
    os,
)
from tests.integration.realtime.conftest import make_cg_world, user_token
from tests.integration.whatsapp.conftest import (
    META_TOKEN,
    PNID,
    meta_channel,
    new_phone,
    post_inbound,
)
from tests.integration.whatsapp.standins import MetaStandIn, meta_text_notification
from tests.integration.whatsapp.test_media_in import PNG, image_notification
from tests.support.api import Api
from tests.support.server import Server

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")


@pytest.fixture
async def receiver() -> AsyncIterator[str]:
    """A webhook receiver on loopback that accepts everything."""
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_delivery_ticks_templates_and_typing(
        server: Server, api: Api, browser: Any, receiver: str) -> None:  # noqa: F811
    w = await api.setup(name="rich-js", type="webhook", config={"url": receiver})
    cid, key = w["conversation"]["id"], w["api_key"]
    token = await user_token(api, w["channel_token"], cid)
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{server.url}/static/demo.html?token={token}&conversation={cid}")
    await page.wait_for_selector("body[data-status=joined]", timeout=10_000)
    await page.fill("#text", "tick me")
    await page.click("button[type=submit]")
    await expect(page.locator("#messages li[data-delivery=sent]")).to_have_count(1, timeout=10_000)
    template = {"name": "order_update", "language": "en_US", "components": []}
    await api.post_activity(cid, key, type="template", sender="agent",
                            metadata={"template": template})
    await expect(page.locator("#messages li .text").nth(1)).to_have_text(
        "template order_update (en_US)")
    await api.post_activity(cid, key, type="typing", sender="agent")
    await expect(page.locator("#typing")).to_have_text("agent is typing")
    await expect(page.locator("#messages li")).to_have_count(2)
    # The client's own calls: a template and a typing indicator go out over the socket.
    await page.evaluate("window.client.sendTemplate('hello_world', 'en_US', [])")
    await page.evaluate("window.client.sendTyping()")
    listed = await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                          headers={"x-api-key": key})
    kinds = [(a["type"], (a.get("metadata") or {}).get("template", {}).get("name"))
             for a in listed["data"]]
    assert ("template", "hello_world") in kinds and ("typing", None) in kinds
    assert errors == []
    await page.close()


async def test_converger_mode_sends_an_image(server: Server, api: Api, browser: Any) -> None:  # noqa: F811
    cg = await make_cg_world(api)
    cid = cg["conv_id"]
    page = await browser.new_page()
    await page.goto(f"{server.url}/static/demo.html?mode=converger&token={cg['conv_token']}"
                    f"&conversation={cid}")
    await page.wait_for_selector("body[data-status=joined]", timeout=10_000)
    sent = await page.evaluate("""async () => {
        const png = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3]);
        const blob = new Blob([png], {type: "image/png"});
        return await window.client.sendAttachment(blob, "a picture", "dot.png");
    }""")
    assert sent["attachment"]["contentType"] == "image/png" and sent["upload_id"]
    link = page.locator("#messages li a.attachment")
    await expect(link).to_have_count(1)
    await expect(link).to_have_attribute("data-type", "image/png")
    assert await link.text_content() == "dot.png"
    href = await link.get_attribute("href")
    async with api.session.get(server.url + href, headers={"x-api-key": cg["api_key"]}) as r:
        assert r.status == 200 and await r.read() == bytes([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3])
    await page.close()


async def test_converger_mode_shows_a_download_and_delivery_ticks(
        server: Server, api: Api, browser: Any) -> None:  # noqa: F811
    """A WhatsApp customer's image arrives while the demo page (Converger mode, the channel's
    token) watches: the attachment shows ``pending``, then ``stored`` with its link, from the
    ``attachment_status`` pushes; the agent's reply gets its ``sent`` tick there too."""
    async with MetaStandIn(token=META_TOKEN, phone_number_id=PNID) as meta:
        gate = asyncio.Event()
        meta.add_media("9001", PNG, "image/png", gate=gate)
        w = await meta_channel(api, meta, timeout_seconds=30)  # the gate holds the download
        phone = new_phone()
        status, body = await post_inbound(api, w["channel"]["id"],
                                          meta_text_notification(phone, "a photo follows"))
        assert status == 201, body
        conv = body["conversation_id"]
        gen = await api.ok("POST", "/api/v1/converger/tokens/generate",
                           headers={"authorization": f"Bearer {w['channel']['secret']}"})
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            await page.goto(f"{server.url}/static/demo.html?mode=converger&token={gen['token']}"
                            f"&conversation={conv}")
            await page.wait_for_selector("body[data-status=joined]", timeout=10_000)
            status, body = await post_inbound(api, w["channel"]["id"],
                                              image_notification(phone, "9001"))
            assert status == 201 and body["conversation_id"] == conv, body
            link = page.locator(f"#messages li[data-id='{body['activity_id']}'] a.attachment")
            await expect(link).to_have_attribute("data-status", "pending", timeout=10_000)
            reply = await api.post_activity(conv, w["api_key"], text="Got it, thanks",
                                            sender="agent")
            await expect(page.locator(f"#messages li[data-id='{reply['id']}']")).to_have_attribute(
                "data-delivery", "sent", timeout=10_000)
        finally:
            gate.set()
        await expect(link).to_have_attribute("data-status", "stored", timeout=20_000)
        href = await link.get_attribute("href")
        assert href and href.startswith(f"/uploads/{w['tenant']['id']}/")
        async with api.session.get(server.url + href, headers={"x-api-key": w["api_key"]}) as r:
            assert r.status == 200 and await r.read() == PNG
        assert errors == []
        await page.close()
