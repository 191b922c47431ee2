"""``health_changed`` reaches, live, every place that shows a channel's health: the admin
dashboard's channel-health card and the tenant portal's (both in headless Chromium, updated
without a reload), and the sockets of that tenant that joined ``channel_health:<tenant id>``
(with a channel token of the tenant; no other tenant's socket hears it). The health job runs
every second on this server; one delivery moves the channel from unknown to healthy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.integration.realtime.phx import Phx
from tests.integration.web.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Client,
    create_admin,
    needs_chromium,
)
from tests.integration.web.test_browser import _login
from tests.support.api import Api
from tests.support.server import Server
from tests.support.serving import serving

pytestmark = needs_chromium

SOCKET = "/socket/websocket"
PORTAL_PASSWORD = "portal pass 1"


async def _until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
    return found


async def _first_event(stream: aiohttp.ClientResponse, timeout: float = 20.0) -> Any:
    """The data of the first ``health_changed`` event on a ``text/event-stream``."""
    event = None
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "health_changed":
                return json.loads(line[len("data: "):])


async def _join(phx: Phx, topic: str) -> dict[str, Any]:
    return (await phx.push(topic, "phx_join", {})).payload


async def test_health_changed_reaches_the_dashboards_and_the_tenants_sockets(
        tmp_path: Path, session: aiohttp.ClientSession, browser: Any) -> None:
    create_admin(tmp_path, ADMIN_EMAIL, ADMIN_PASSWORD)
    srv = Server(tmp_path, env={"CONVERGER_HEALTH_INTERVAL": "1"}).start()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    admin = Client(srv.url)
    clients = [admin]
    pages: list[Any] = []
    sockets: list[Phx] = []
    streams: list[aiohttp.ClientResponse] = []
    try:
        async with serving(app) as base:
            api = Api(session, srv.url)
            tenant, other = await api.tenant("live-health"), await api.tenant("other-health")
            channel = await api.channel(tenant["id"], "hooked", type="webhook",
                                        config={"url": f"{base}/hook"})
            theirs = await api.channel(other["id"], "quiet", type="webhook",
                                       config={"url": f"{base}/hook"})

            async def first_check() -> bool:
                rows = (await api.ok("GET", "/api/admin/health", headers=api.admin))["data"]
                return any(r["channel_id"] == channel["id"] for r in rows)

            await _until(first_check, 15, "no health check ran")

            # The tenant's socket joins its health topic; others may not.
            token = await api.channel_token(channel["id"])
            mine = await Phx.connect(session, srv.ws_url, SOCKET, token)
            foreign = await Phx.connect(session, srv.ws_url, SOCKET,
                                        await api.channel_token(theirs["id"]))
            conv = await api.conversation(token)
            user = await Phx.connect(session, srv.ws_url, SOCKET, (await api.ok(
                "POST", "/api/v1/tokens", 201, json={"conversation_id": conv["id"],
                                                     "user_id": "u1"},
                headers={"x-channel-token": token}))["token"])
            sockets += [mine, foreign, user]
            topic = f"channel_health:{tenant['id']}"
            assert (await _join(mine, topic))["status"] == "ok"
            assert (await _join(foreign, f"channel_health:{other['id']}"))["status"] == "ok"
            assert await _join(foreign, topic) == {"status": "error",
                                                   "response": {"reason": "unauthorized"}}
            assert await _join(user, topic) == {"status": "error",
                                                "response": {"reason": "unauthorized"}}

            # Both dashboards are open, showing the channel as unknown.
            assert await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
            status, body, _ = await admin.add_tenant_user({
                "tenant_id": tenant["id"], "name": "P", "email": "p@live.example",
                "password": PORTAL_PASSWORD, "role": "member"})
            assert status == 302, body
            status, body, _ = await admin.add_tenant_user({
                "tenant_id": other["id"], "name": "Q", "email": "q@other.example",
                "password": PORTAL_PASSWORD, "role": "member"})
            assert status == 302, body
            neighbour = Client(srv.url)
            clients.append(neighbour)
            assert await neighbour.login("q@other.example", PORTAL_PASSWORD, "portal",
                                         tenant=other["slug"]) == 302
            stream = await neighbour.session.get(srv.url + "/portal/health/events")
            streams.append(stream)
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert await stream.content.readline() == b": open\n"
            pages.append(await _login(browser, srv.url, ADMIN_EMAIL, ADMIN_PASSWORD))
            pages.append(await _login(browser, srv.url, "p@live.example", PORTAL_PASSWORD,
                                      "portal", tenant=tenant["slug"]))
            cell = f'#health tr[data-channel="{channel["id"]}"] [data-health]'
            for page in pages:
                assert await page.get_attribute(cell, "data-health") == "unknown"
                await page.evaluate("window.notReloaded = true")
            # And the admin's channels page, whose dot shows the health too.
            channels_page = await pages[0].context.new_page()
            await channels_page.goto(f"{srv.url}/admin/channels")
            dot = f'[data-health-dot="{channel["id"]}"]'
            assert await channels_page.get_attribute(dot, "class") == "dot unknown"

            # One delivery: the next health run finds the channel healthy.
            await api.post_activity(conv["id"], tenant["api_key"], text="hello")
            for page in pages:
                await page.wait_for_selector(
                    f'#health tr[data-channel="{channel["id"]}"] [data-health="healthy"]',
                    timeout=20_000)
                assert await page.evaluate("window.notReloaded") is True
                row = await page.text_content(f'#health tr[data-channel="{channel["id"]}"]')
                assert "Healthy" in row and "0.0 %" in row

            await channels_page.wait_for_selector(f"{dot}.healthy", timeout=20_000)
            assert await channels_page.get_attribute(dot, "title") == "health: healthy"
            event = await mine.expect(lambda f: f.event == "health_changed", timeout=20)
            assert event.topic == topic
            assert (event.payload["channel_id"], event.payload["previous_status"],
                    event.payload["status"], event.payload["total_deliveries"]) == (
                channel["id"], "unknown", "healthy", 1)
            # Published to both at once: had the other tenant's socket heard it, the frame
            # would be ahead of this heartbeat's reply.
            await foreign.reply(await foreign.send("phoenix", "heartbeat", {}))
            assert not [f for f in foreign.inbox if f.event == "health_changed"]
            # The other tenant's portal stream: its first event is its own channel's change,
            # made after ours, so ours never reached it.
            other_conv = await api.conversation(await api.channel_token(theirs["id"]))
            await api.post_activity(other_conv["id"], other["api_key"], text="hi")
            data = await _first_event(stream)
            assert (data["channel_id"], data["tenant_id"], data["status"]) == (
                theirs["id"], other["id"], "healthy")
    finally:
        for phx in sockets:
            await phx.ws.close()
        for page in pages:
            await page.context.close()
        for response in streams:
            response.close()
        for client in clients:
            await client.close()
        srv.stop()
