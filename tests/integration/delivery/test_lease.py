"""A lease that runs out on a RUNNING server: the periodic rescuer gives the delivery back and it
is sent again with the same ``webhook-id``; the stale attempt's late outcome, whose claim is no
longer held, changes nothing. Short lease and rescue interval through their settings
(``CONVERGER_DELIVERY_LEASE``, ``CONVERGER_LEASE_RESCUE_INTERVAL``); no restart involved."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook

from tests.support.api import Api
from tests.support.server import Server
from tests.support.serving import serving


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
    return found


async def test_an_expired_lease_is_sent_again_with_the_same_webhook_id(
    fresh_server: Server, session: aiohttp.ClientSession
) -> None:
    calls: list[tuple[dict[str, str], bytes]] = []
    second = asyncio.Event()
    released = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        calls.append((dict(request.headers), await request.read()))
        if len(calls) == 1:
            # The first attempt hangs past its 2 s lease (well within the 10 s attempt
            # timeout) until the rescued delivery arrives again; then it answers too.
            try:
                await asyncio.wait_for(second.wait(), 15)
            finally:
                released.set()
        else:
            second.set()
        return web.Response(status=200, text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        fresh_server.extra_env.update({
            "CONVERGER_DELIVERY_LEASE": "2", "CONVERGER_LEASE_RESCUE_INTERVAL": "0.2",
            "CONVERGER_DELIVERY_CONCURRENCY": "2"})
        srv = fresh_server.start()
        api = Api(session, srv.url)
        s = await api.setup("lease", type="webhook", config={"url": f"{base}/hook"})
        activity = await api.post_activity(s["conversation"]["id"], s["api_key"], text="again")

        try:  # the rescue happened: no restart, no kill
            await asyncio.wait_for(second.wait(), 15)
        except TimeoutError:
            second.set()  # lets the first attempt's handler end before the receiver stops
            raise AssertionError("the delivery whose lease ran out was not sent again") from None
        await asyncio.wait_for(released.wait(), 15)
        assert srv.proc is not None and srv.proc.poll() is None
        (h1, b1), (h2, b2) = calls[:2]
        assert h1["webhook-id"] == h2["webhook-id"] and b1 == b2  # the receiver can dedupe
        payload = Webhook(s["channel"]["secret"]).verify(b2, h2)
        assert payload["id"] == activity["id"]

        async def settled() -> list[dict[str, Any]]:
            # Both outcomes written: the workers hold no claim any more.
            _, ready, _ = await api.call("GET", "/readyz")
            if ready["checks"]["delivery"]["in_flight"] != 0:
                return []
            return (await api.ok("GET", f"/api/admin/deliveries?activity_id={activity['id']}",
                                 headers=api.admin))["data"]

        [row] = await _until(settled, 15, "the delivery's outcomes were not recorded")
        # The rescued attempt's success counts once; the stale attempt's (its claim token was
        # replaced by the new claim) is ignored.
        assert (row["id"], row["status"], row["attempts"]) == (h1["webhook-id"], "sent", 1)
        # (On a very slow machine the rescued attempt may outlive its lease too and go out a
        # third time: still the same webhook-id, still one attempt counted.)
        assert {h["webhook-id"] for h, _ in calls} == {row["id"]}
    assert "reclaimed" not in srv.log()  # not the start-up rescue: the periodic one
