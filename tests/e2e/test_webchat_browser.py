"""Bot Framework Web Chat (the ``botframework-webchat`` npm package's prebuilt bundle) in
headless Chromium, on a page served from another loopback origin than the gateway, talking to
the gateway's Direct Line mount in Web Chat's defaults (WebSocket): a typed message gets the
echo reply, an uploaded file shows as an attachment fetched from its signed URL, and an
Adaptive Card's submit reaches the gateway with its ``value`` intact."""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.directline.conftest import DL, bearer, make_dl_world
from tests.support.api import Api
from tests.support.server import Server
from tests.support.serving import serving

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
BUNDLE = (Path(__file__).resolve().parent / "node" / "node_modules" / "botframework-webchat"
          / "dist" / "webchat.js")

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")

# docs/directline.md's five lines, with the test's gateway and token filled in.
PAGE = """<!doctype html>
<div id="webchat" style="height: 640px"></div>
<script src="/webchat.js"></script>
<script>
  WebChat.renderWebChat({ directLine: WebChat.createDirectLine({ domain: "%(domain)s", token: "%(token)s" }),
                          userID: "ann" }, document.getElementById("webchat"));
</script>
"""

CARD = {
    "contentType": "application/vnd.microsoft.card.adaptive",
    "content": {
        "type": "AdaptiveCard", "version": "1.3",
        "body": [{"type": "TextBlock", "text": "Favourite colour?"},
                 {"type": "Input.Text", "id": "colour", "placeholder": "colour"}],
        "actions": [{"type": "Action.Submit", "title": "Send it",
                     "data": {"survey": "colours", "n": [1, 2, {"deep": None}]}}],
    },
}


def png(width: int = 4, height: int = 3) -> bytes:
    """A small valid PNG (red), so the browser really decodes what the gateway served."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def test_webchat_from_another_origin(fresh_server: Server, session: aiohttp.ClientSession,
                                           browser: Any) -> None:
    if not BUNDLE.exists():
        pytest.fail("botframework-webchat is missing: run `bash tests/setup.sh`")
    page_html: dict[str, str] = {}

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page_html["html"], content_type="text/html")

    async def bundle(request: web.Request) -> web.FileResponse:
        return web.FileResponse(BUNDLE)

    site = web.Application()
    site.router.add_get("/", index)
    site.router.add_get("/webchat.js", bundle)
    async with serving(site) as origin:
        # The page's origin (another port) is the only one the gateway allows.
        fresh_server.extra_env["CORS_ORIGINS"] = origin
        gateway = fresh_server.start()
        api = Api(session, gateway.url)
        w = await make_dl_world(api)
        gen = await api.ok("POST", f"{DL}/tokens/generate", headers=bearer(w["secret"]))
        cid = gen["conversationId"]
        page_html["html"] = PAGE % {"domain": gateway.url + DL, "token": gen["token"]}

        page = await browser.new_page()
        page.set_default_timeout(60_000)  # generous: the machine may be loaded, nothing waits on it
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(origin + "/")

        # 1. A typed message; the echo bot's reply is rendered.
        box = page.get_by_placeholder("Type your message")
        await box.fill("hello from web chat")
        await box.press("Enter")
        replies = page.locator(".webchat__bubble:not(.webchat__bubble--from-user)",
                               has_text="hello from web chat")
        await replies.first.wait_for(timeout=60_000)
        mine = page.locator(".webchat__bubble--from-user", has_text="hello from web chat")
        await mine.first.wait_for()

        # 2. A file, uploaded as Web Chat sends it, shown as an attachment whose link is the
        #    gateway's signed URL (absolute: the page is on another origin, and has no header
        #    to send with a link); the browser loads it from there without credentials.
        await page.set_input_files("input[type=file]", files=[
            {"name": "red.png", "mimeType": "image/png", "buffer": png()}])
        # Web Chat 4.18 stages the file until sent, reading it asynchronously: Send pressed before
        # the upload button shows it staged (its icon "checked") sends nothing.
        await page.locator(".webchat__upload-button .webchat__attachment-icon--checked").wait_for()
        await page.click("button[title=Send]")
        link = page.locator(f".webchat__bubble--from-user a[href^='{gateway.url}/uploads/']",
                            has_text="red.png")
        await link.wait_for(state="attached", timeout=60_000)
        href = await link.get_attribute("href")
        assert href and "sig=" in href and "exp=" in href
        width = await page.evaluate("""href => new Promise((ok, fail) => {
            const img = new Image(); img.onload = () => ok(img.naturalWidth);
            img.onerror = () => fail(new Error("not loaded")); img.src = href; })""", href)
        assert width == 4
        async with session.get(href) as r:  # no credentials: the signature is enough
            assert r.status == 200 and await r.read() == png()
        async with session.get(href.replace("sig=", "sig=x")) as r:
            assert r.status == 401

        # 3. An Adaptive Card from the bot's side (the tenant API); its submit comes back with
        #    the card's data and the input's value, intact.
        await api.post_activity(cid, w["api_key"], sender="bot", attachments=[CARD])
        await page.get_by_role("textbox", name="colour").fill("green")
        await page.locator("button.ac-pushButton", has_text="Send it").click()
        submitted = None
        async with asyncio.timeout(60):
            while submitted is None:
                page_ = await api.ok("GET", f"{DL}/conversations/{cid}/activities",
                                     headers=bearer(w["secret"]))
                submitted = next((a for a in page_["activities"] if "value" in a), None)
                if submitted is None:
                    await page.wait_for_timeout(100)
        assert submitted["value"] == {"survey": "colours", "n": [1, 2, {"deep": None}],
                                      "colour": "green"}
        assert submitted["from"]["id"] == "ann" and submitted["from"]["role"] == "user"

        # What the gateway stored: the upload's activity with its attachment, from Web Chat.
        listed = (await api.ok("GET", f"{DL}/conversations/{cid}/activities",
                               headers=bearer(w["secret"])))["activities"]
        (uploaded,) = [a for a in listed if a["attachments"] and a["from"]["id"] == "ann"]
        (att,) = uploaded["attachments"]
        assert att["contentType"] == "image/png" and att["name"] == "red.png"
        assert uploaded["channelData"]["clientActivityID"]
        assert errors == []
        await page.close()
