"""Health alerts go through a durable queue (issue 7): on the real server, a channel's health
change queues an alert in the same transaction as the check, and an alert whose attempt was in
flight when the process was SIGKILLed is sent after the restart — with the same ``webhook-id``
and a signature that verifies with the channel's secret. Also the management list's bad input."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook

from tests.integration.web.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Client, create_admin
from tests.support.api import Api
from tests.support.server import Server
from tests.support.serving import serving


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
    return found


async def test_alert_in_flight_at_sigkill_is_sent_after_restart(
    make_server: Callable[..., Server], session: aiohttp.ClientSession
) -> None:
    srv = make_server(env={"CONVERGER_HEALTH_INTERVAL": "1"})
    alerts: list[tuple[dict[str, str], bytes]] = []
    got = asyncio.Event()

    async def alert(request: web.Request) -> web.Response:
        alerts.append((dict(request.headers), await request.read()))
        got.set()
        if len(alerts) == 1:
            srv.kill()  # the gateway dies with this attempt in flight: no outcome is written
        return web.Response(status=204)

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/alerts", alert)
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        api = Api(session, srv.url)
        tenant = (await api.ok("POST", "/api/admin/tenants", 201, headers=api.admin, json={
            "name": "alerted", "alert_webhook_url": f"{base}/alerts"}))["data"]
        channel = await api.channel(tenant["id"], "hooked", type="webhook",
                                    config={"url": f"{base}/hook"})

        async def checked() -> list[Any]:
            rows = (await api.ok("GET", "/api/admin/health", headers=api.admin))["data"]
            return [r for r in rows if r["channel_id"] == channel["id"]]

        # The first check finds no traffic (unknown: no alert on a first check) ...
        [first] = await _until(checked, 15, "no health check ran")
        assert first["status"] == "unknown"
        # ... one delivery later the channel is healthy: a change, so an alert.
        conv = await api.conversation(await api.channel_token(channel["id"]))
        await api.post_activity(conv["id"], tenant["api_key"], text="hello")
        await asyncio.wait_for(got.wait(), 15)
        assert srv.proc is not None and srv.proc.poll() is not None, "killed mid-attempt"

        got.clear()
        srv.start()
        await asyncio.wait_for(got.wait(), 15)  # re-sent at start-up: its lease was reclaimed

        (h1, b1), (h2, b2) = alerts
        assert h1["webhook-id"] == h2["webhook-id"] and b1 == b2  # the receiver can dedupe
        payload = Webhook(channel["secret"]).verify(b2, h2)
        assert payload["event"] == "channel_health_changed"
        assert (payload["channel_id"], payload["previous_status"], payload["new_status"]) == (
            channel["id"], "unknown", "healthy")

        async def sent() -> list[Any]:
            rows = (await api.ok("GET", f"/api/admin/alerts?tenant_id={tenant['id']}",
                                 headers=api.admin))["data"]
            return rows if rows and rows[0]["status"] == "sent" else []

        [row] = await _until(sent, 10, "alert not recorded as sent")
        assert row["id"] == h2["webhook-id"]
        assert (row["attempts"], row["last_error"], row["url"]) == (1, None, f"{base}/alerts")
        assert "claim_token" not in row
        assert len(alerts) == 2  # still healthy after the restart: no new alert

        # The admin dashboard lists it.
        create_admin(srv.data_dir, ADMIN_EMAIL, ADMIN_PASSWORD)
        admin = Client(srv.url)
        try:
            assert await admin.login(ADMIN_EMAIL, ADMIN_PASSWORD) == 302
            status, page, _ = await admin.get("/admin")
            assert status == 200
            row = page[page.index(f'data-alert="{row["id"]}"'):]
            row = row[:row.index("</tr>")]
            for shown in ("hooked", "alerted", ">unknown<", ">healthy<", ">sent<"):
                assert shown in row, (shown, row)
        finally:
            await admin.close()


async def _alerted_channel(srv: Server, api: Api, base: str, path: str) -> tuple[Any, Any]:
    """A tenant whose alerts go to ``base + path`` and a webhook channel that turns from
    ``unknown`` (first check, no traffic) to ``healthy`` (one delivery): one alert."""
    tenant = (await api.ok("POST", "/api/admin/tenants", 201, headers=api.admin, json={
        "name": f"alerted{path.replace('/', '-')}", "alert_webhook_url": f"{base}{path}"}))["data"]
    channel = await api.channel(tenant["id"], "hooked", type="webhook",
                                config={"url": f"{base}/hook"})

    async def checked() -> list[Any]:
        rows = (await api.ok("GET", "/api/admin/health", headers=api.admin))["data"]
        return [r for r in rows if r["channel_id"] == channel["id"]]

    [first] = await _until(checked, 15, "no health check ran")
    assert first["status"] == "unknown"
    conv = await api.conversation(await api.channel_token(channel["id"]))
    await api.post_activity(conv["id"], tenant["api_key"], text="hello")
    return tenant, channel


async def _final_alert(api: Api, tenant: Any) -> Any:
    async def final() -> list[Any]:
        rows = (await api.ok("GET", f"/api/admin/alerts?tenant_id={tenant['id']}",
                             headers=api.admin))["data"]
        return rows if rows and rows[0]["status"] != "pending" else []

    [row] = await _until(final, 20, "the alert never reached a final status")
    return row


async def test_alert_fails_after_five_attempts_without_blocking_the_job(
    make_server: Callable[..., Server], session: aiohttp.ClientSession
) -> None:
    """On the real server (retry waits scaled by ``CONVERGER_BACKOFF_SCALE``): a receiver that
    always answers 500 gets the alert 5 times, with one ``webhook-id``, then it is ``failed``;
    the health job keeps running meanwhile and after."""
    srv = make_server(env={"CONVERGER_HEALTH_INTERVAL": "1", "CONVERGER_BACKOFF_SCALE": "0.001"})
    seen: list[dict[str, str]] = []

    async def broken(request: web.Request) -> web.Response:
        await request.read()
        seen.append(dict(request.headers))
        return web.Response(status=500, text="down")

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/broken", broken)
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        api = Api(session, srv.url)
        tenant, channel = await _alerted_channel(srv, api, base, "/broken")
        row = await _final_alert(api, tenant)
        assert (row["status"], row["attempts"]) == ("failed", 5)
        assert "500" in (row["last_error"] or "")
        assert len(seen) == 5 and {h["webhook-id"] for h in seen} == {row["id"]}
        failed_at = row["updated_at"]

        async def checked_later() -> bool:  # the job was never blocked by the alert
            rows = (await api.ok("GET", "/api/admin/health", headers=api.admin))["data"]
            return any(r["channel_id"] == channel["id"] and r["checked_at"] > failed_at
                       for r in rows)

        await _until(checked_later, 15, "no health check after the alert failed")
        assert len(seen) == 5  # failed is final: never sent again


async def test_alert_gone_410_fails_at_once(
    make_server: Callable[..., Server], session: aiohttp.ClientSession
) -> None:
    """``410 Gone`` from the alert receiver: one attempt, ``failed`` at once, never again."""
    srv = make_server(env={"CONVERGER_HEALTH_INTERVAL": "1", "CONVERGER_BACKOFF_SCALE": "0.001"})
    hits: list[str] = []

    async def gone(request: web.Request) -> web.Response:
        await request.read()
        hits.append(request.headers["webhook-id"])
        return web.Response(status=410, text="unsubscribed")

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/gone", gone)
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        api = Api(session, srv.url)
        tenant, channel = await _alerted_channel(srv, api, base, "/gone")
        row = await _final_alert(api, tenant)
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert row["last_error"] == "webhook returned status 410"  # no body echoed (issue 13)
        assert row["next_attempt_at"] is None
        # Later health checks run; the failed alert is not retried.
        failed_at = row["updated_at"]

        async def checked_later() -> bool:
            rows = (await api.ok("GET", "/api/admin/health", headers=api.admin))["data"]
            return any(r["channel_id"] == channel["id"] and r["checked_at"] > failed_at
                       for r in rows)

        await _until(checked_later, 15, "no health check after the alert failed")
        assert hits == [row["id"]]


async def test_an_alert_whose_lease_runs_out_is_sent_again_on_the_running_server(
    make_server: Callable[..., Server], session: aiohttp.ClientSession
) -> None:
    """The alert sender reclaims expired leases while running, as the delivery workers do: an
    attempt that outlives its lease (1 s; the attempt is cut off at 2 s) no longer counts, and
    the alert goes out again at once with the same ``webhook-id`` — not after the 30 s retry
    wait a counted failure would bring, nor only at the next restart."""
    srv = make_server(env={"CONVERGER_HEALTH_INTERVAL": "1", "CONVERGER_WEBHOOK_TIMEOUT": "2",
                           "CONVERGER_DELIVERY_LEASE": "1",
                           "CONVERGER_LEASE_RESCUE_INTERVAL": "0.2"})
    seen: list[dict[str, str]] = []
    again = asyncio.Event()
    done = asyncio.Event()

    async def alert(request: web.Request) -> web.Response:
        await request.read()
        seen.append(dict(request.headers))
        if len(seen) == 1:
            await done.wait()  # hangs past the lease; the gateway cuts it off after 2 s
        else:
            again.set()
        return web.Response(status=204)

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/alerts", alert)
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        try:  # the hanging handler ends before the receiver stops
            api = Api(session, srv.url)
            tenant, _ = await _alerted_channel(srv, api, base, "/alerts")
            try:
                await asyncio.wait_for(again.wait(), 15)
            except TimeoutError:
                raise AssertionError("the alert whose lease ran out was not sent again") from None
            row = await _final_alert(api, tenant)
            assert (row["status"], row["attempts"]) == ("sent", 1)
            assert len(seen) >= 2 and {h["webhook-id"] for h in seen} == {row["id"]}
        finally:
            done.set()
    assert srv.proc is not None and srv.proc.poll() is None  # no restart involved


async def test_alert_list_bad_input(api: Api) -> None:
    for query, code in (("status=bogus", "invalid_query"), ("tenant_id=nope", "invalid_uuid"),
                        ("limit=0", "invalid_query"), ("cursor=%%%", "invalid_cursor")):
        status, body, headers = await api.call("GET", f"/api/admin/alerts?{query}", headers=api.admin)
        assert status == 400, (query, body)
        assert headers["content-type"].startswith("application/problem+json")
        assert body["code"] == code, (query, body)
    status, body, _ = await api.call("GET", "/api/admin/alerts")
    assert status == 401 and body["code"] == "missing_credentials"
    status, body, _ = await api.call("GET", "/api/admin/alerts", headers={"authorization": "Bearer cva_wrong"})
    assert status == 401, body
    empty = await api.ok("GET", f"/api/admin/alerts?tenant_id={uuid.uuid4()}&status=failed&limit=5",
                         headers=api.admin)
    assert empty == {"data": [], "next": None}
