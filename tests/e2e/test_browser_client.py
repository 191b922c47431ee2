"""/static/converger.js in headless Chromium (Debian's, driven by Playwright), from the demo
page the gateway serves: a message arrives, one is sent, and a dropped connection resumes
without losing or duplicating anything."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import expect  # CSP-safe waits: the demo page forbids eval

from tests.integration.realtime.conftest import bearer, make_cg_world, make_world
from tests.support.api import Api
from tests.support.server import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def _texts(page: Any) -> list[str]:
    return await page.eval_on_selector_all("#messages li .text", "els => els.map(e => e.textContent)")


async def _ids(page: Any) -> list[str]:
    return await page.eval_on_selector_all("#messages li", "els => els.map(e => e.dataset.id)")


async def test_legacy_demo_page_receives_sends_and_resumes(
    server: Server, api: Api, browser: Any
) -> None:
    w = await make_world(api)
    cid, key = w["conv_id"], w["api_key"]
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{server.url}/static/demo.html?token={w['user_token']}&conversation={cid}")
    await page.wait_for_selector("body[data-status=joined]", timeout=10_000)
    a = await api.post_activity(cid, key, text="hello browser", sender="server")
    await page.wait_for_selector(f"#messages li[data-id='{a['id']}']", timeout=10_000)
    await page.fill("#text", "hello server")
    await page.click("button[type=submit]")
    await expect(page.locator("#messages li")).to_have_count(2)
    listed = await api.ok("GET", f"/api/v1/conversations/{cid}/activities", headers={"x-api-key": key})
    assert [x["text"] for x in listed["data"]] == ["hello browser", "hello server"]
    # Drop the connection abruptly, post while it reconnects: nothing lost, nothing twice.
    await page.evaluate("window.client._ws.close()")
    await asyncio.gather(*(api.post_activity(cid, key, text=f"gap {i}") for i in range(3)))
    # And a clean disconnect, posts while away, then connect and rejoin.
    await page.evaluate("window.client.disconnect()")
    for i in range(3):
        await api.post_activity(cid, key, text=f"away {i}")
    await page.evaluate(f"window.client.connect().then(() => window.client.joinConversation('{cid}'))")
    await page.locator("#messages li").nth(7).wait_for(timeout=10_000)
    await api.post_activity(cid, key, text="last")
    await page.locator("#messages li").nth(8).wait_for()
    listed = await api.ok("GET", f"/api/v1/conversations/{cid}/activities", headers={"x-api-key": key})
    assert await _ids(page) == [x["id"] for x in listed["data"]]
    assert errors == []
    await page.close()


async def test_converger_mode_demo_page(server: Server, api: Api, browser: Any) -> None:
    cg = await make_cg_world(api)
    cid = cg["conv_id"]
    path = f"/api/v1/converger/conversations/{cid}/activities"
    page = await browser.new_page()
    await page.goto(f"{server.url}/static/demo.html?mode=converger&token={cg['conv_token']}"
                    f"&conversation={cid}")
    await page.wait_for_selector("body[data-status=joined]", timeout=10_000)
    await api.ok("POST", path, json={"text": "hi from api", "from": {"id": "bot"}},
                 headers=bearer(cg["conv_token"]))
    await expect(page.locator("#messages li")).to_have_count(1)
    await page.fill("#text", "hi from page")
    await page.click("button[type=submit]")
    await expect(page.locator("#messages li")).to_have_count(2)
    assert await _texts(page) == ["hi from api", "hi from page"]
    # Resume by watermark after a drop.
    await page.evaluate("window.client.disconnect()")
    await api.ok("POST", path, json={"text": "while away"}, headers=bearer(cg["conv_token"]))
    await page.evaluate(f"window.client.connect().then(() => window.client.joinConversation('{cid}'))")
    await expect(page.locator("#messages li")).to_have_count(3)
    assert await _texts(page) == ["hi from api", "hi from page", "while away"]
    await page.close()
