"""Hole 3 (issue 13): SSRF from every URL setting. Through the real server: with the default
outbound policy, deliveries to loopback, private, link-local/metadata and unspecified addresses
are refused at connect time (names pinned to them by ``CONVERGER_OUTBOUND_HOSTS``, the
server's test resolver, so nothing but loopback is ever contacted); redirects are not followed;
``last_error`` never echoes what the target answered."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from tests.integration.delivery.conftest import wait_delivery
from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api
from tests.support.serving import serving

PINNED = ("meta.test=169.254.169.254,private.test=10.0.0.7,six.test=fd00::1,"
          "zero.test=0.0.0.0,loop.test=127.0.0.1")


async def _webhook(api: Api, name: str, url: str) -> dict[str, Any]:
    return await api.setup(name, type="webhook", config={"url": url})


async def test_default_policy_refuses_non_public_destinations(make_server: Any,
                                                             receiver: Receiver) -> None:
    srv = make_server(env={"CONVERGER_OUTBOUND_ALLOW": "",  # the default: nothing extra
                           "CONVERGER_OUTBOUND_HOSTS": PINNED,
                           "CONVERGER_BACKOFF_SCALE": "0.0001"})
    async with aiohttp.ClientSession() as s:
        api = Api(s, srv.url)
        urls = [receiver.url("direct"), f"http://localhost:{receiver.port}/named",
                f"http://loop.test:{receiver.port}/pinned", f"http://[::1]:{receiver.port}/v6",
                f"http://0.0.0.0:{receiver.port}/zero", srv.url + "/api/v1/tokens",
                "http://meta.test/latest/meta-data/", "http://private.test/hook",
                "http://six.test/hook", "http://zero.test/hook",
                "http://169.254.169.254/latest/meta-data/"]
        posted = []
        for i, url in enumerate(urls):
            w = await _webhook(api, f"ssrf-{i}", url)
            a = await api.post_activity(w["conversation"]["id"], w["api_key"], text="secret")
            posted.append((url, a["id"]))
        # Meta's api_base_url goes through the same policy.
        t = await api.tenant("ssrf-meta")
        meta = await api.channel(t["id"], type="whatsapp_meta", mode="outbound", config={
            "phone_number_id": "1", "access_token": "EAAG-token", "verify_token": "v",
            "api_base_url": f"http://127.0.0.1:{receiver.port}"})
        tok = await api.channel_token(meta["id"])
        conv = await api.conversation(tok)
        a = await api.post_activity(conv["id"], t["api_key"], text="hi", sender="agent",
                                    metadata={"recipient_phone": "15551234567"})
        posted.append(("meta api_base_url", a["id"]))
        for url, activity_id in posted:
            done = await wait_delivery(api, activity_id, lambda d: d["status"] == "failed",
                                       timeout=30)
            assert "not allowed" in done["last_error"], (url, done)
            assert len(done["last_error"]) <= 200
    assert dict(receiver.calls) == {}  # nothing reached the loopback receiver


async def test_redirects_are_not_followed_and_errors_do_not_echo(make_server: Any) -> None:
    hits: list[str] = []

    async def hop(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect("/internal")

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    async def leaky(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=500, text="INTERNAL-SECRET " * 100)

    app = web.Application()
    for path, handler in (("/hop", hop), ("/internal", internal), ("/leaky", leaky)):
        app.router.add_post(path, handler)
    srv = make_server(env={"CONVERGER_BACKOFF_SCALE": "0.0001"})  # loopback allowed (tests)
    async with serving(app) as base, aiohttp.ClientSession() as s:
        api = Api(s, srv.url)
        w = await _webhook(api, "hop", base + "/hop")
        a = await api.post_activity(w["conversation"]["id"], w["api_key"], text="x")
        done = await wait_delivery(api, a["id"], lambda d: d["status"] == "failed", timeout=30)
        assert done["last_error"] == "webhook returned status 307"
        w = await _webhook(api, "leaky", base + "/leaky")
        a = await api.post_activity(w["conversation"]["id"], w["api_key"], text="x")
        done = await wait_delivery(api, a["id"], lambda d: d["status"] == "failed", timeout=30)
        assert done["last_error"] == "webhook returned status 500"
        # The tenant's own view of the delivery says no more.
        _, body, _ = await api.call(
            "GET", f"/api/v1/conversations/{w['conversation']['id']}/activities?include=deliveries",
            headers={"x-api-key": w["api_key"]})
        assert "INTERNAL-SECRET" not in str(body)
    assert "/internal" not in hits and hits.count("/hop") >= 1
