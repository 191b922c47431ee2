"""Background jobs with an injected clock: health transitions (reference §12) with a signed
alert delivered to a real receiver, conversation expiry (§13), pruning, the scheduler."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from gateway import config, domain
from gateway.crypto import Cipher
from gateway.hub import Hub, Subscriber
from gateway.workers import expiry, health
from gateway.workers.scheduler import Scheduler
from store import activities, conversations, migrations, queue
from store.db import Database
from store.maintenance import classify
from store.util import iso

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTOR = ("system", "test")
log = logging.getLogger("converger.test")


class Receiver:
    """A real aiohttp webhook receiver that fails the first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if len(self.requests) <= self.fail_first:
            return web.Response(status=503)
        self.got.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver(fail_first=1)
    app = web.Application()
    app.router.add_post("/alerts", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield rec, f"http://127.0.0.1:{port}/alerts"
    await runner.cleanup()


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[SimpleNamespace]:
    settings = config.load({}, data_dir=str(tmp_path))
    db = Database(tmp_path / "jobs.db")
    db.start(prepare=migrations.apply)
    yield SimpleNamespace(db=db, hub=Hub(), cipher=Cipher("k" * 32), settings=settings, log=log)
    db.close()


async def _tenant_channel(ctx: SimpleNamespace, alert_url: str | None, type: str = "webhook") -> tuple[Any, Any, str]:
    def tx(conn):
        tenant, _ = domain.create_tenant_tx(conn, "t", alert_url, "active", ACTOR, iso(T0))
        cfg = {"url": "http://127.0.0.1:9/x"} if type == "webhook" else {}
        channel, secret = domain.create_channel_tx(
            conn, ctx.cipher, tenant_id=tenant.id, name=f"ch-{type}", type=type, mode=None,
            config=cfg, transformations=[], status="active", actor=ACTOR, now=iso(T0))
        return tenant, channel, secret
    return await ctx.db.write(tx)


async def _deliveries(ctx: SimpleNamespace, tenant: Any, channel: Any, at: datetime, ok: int, failed: int) -> None:
    def tx(conn):
        conv = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id, now=iso(at))
        for i in range(ok + failed):
            a = activities.insert(conn, tenant_id=tenant.id, conversation_id=conv.id, sender="u",
                                  now=iso(at), text=str(i))
            queue.enqueue(conn, a, [channel.id], iso(at))
            if i < failed:
                conn.execute("UPDATE deliveries SET status = 'failed' WHERE activity_id = ?", (a.id,))
    await ctx.db.write(tx)


def test_classify_thresholds() -> None:
    assert classify(0, 0) == ("unknown", 0.0)
    assert classify(10, 0) == ("healthy", 0.0)
    assert classify(100, 9) == ("healthy", 0.09)
    assert classify(10, 1) == ("degraded", 0.1)
    assert classify(10, 5) == ("unhealthy", 0.5)
    assert classify(3, 1) == ("degraded", 0.3333)


async def test_health_transitions_push_and_alert(ctx, receiver) -> None:
    rec, url = receiver
    tenant, channel, secret = await _tenant_channel(ctx, url)
    await _tenant_channel(ctx, url, type="websocket")  # not an external channel: never checked
    events: list[tuple[str, Any]] = []
    ctx.hub.subscribe("channel_health", Subscriber(lambda e, p: events.append((e, p)) or True))
    fast = (0.01, 0.01, 0.01)

    # First check: unknown, and no alert (no previous check).
    [r] = await health.run(ctx, T0, alert_delays=fast)
    assert (r.status, r.previous_status, r.total_deliveries) == ("unknown", None, 0)
    assert events == [] and rec.requests == []

    # 10 deliveries, 2 failed → degraded: pushed, and alerted (first attempt 503, retried).
    t1 = T0 + timedelta(minutes=5)
    await _deliveries(ctx, tenant, channel, t1 - timedelta(minutes=1), ok=8, failed=2)
    [r] = await health.run(ctx, t1, alert_delays=fast)
    assert (r.previous_status, r.status, r.failure_rate) == ("unknown", "degraded", 0.2)
    assert events[-1][0] == "health_changed"
    assert events[-1][1] == {
        "channel_id": channel.id, "channel_name": channel.name, "tenant_id": tenant.id,
        "previous_status": "unknown", "status": "degraded", "failure_rate": 0.2,
        "total_deliveries": 10, "failed_deliveries": 2, "checked_at": iso(t1)}
    assert len(rec.requests) == 2  # one failure, one success
    headers, body = rec.requests[-1]
    assert rec.requests[0][0]["webhook-id"] == headers["webhook-id"]  # same id on retry
    payload = Webhook(secret).verify(body, headers)  # raises if the signature is wrong
    assert payload["event"] == "channel_health_changed"
    assert payload["previous_status"] == "unknown" and payload["new_status"] == "degraded"
    assert payload["total_deliveries"] == 10 and payload["failed_deliveries"] == 2
    assert json.loads(body)["checked_at"] == iso(t1)

    # Same state again: a row, no event.
    n_events = len(events)
    [r] = await health.run(ctx, t1 + timedelta(minutes=5), alert_delays=fast)
    assert r.status == "degraded" and len(events) == n_events

    # Pending deliveries count in the total; 10 more failed → 12/20 → unhealthy.
    t2 = t1 + timedelta(minutes=10)
    await _deliveries(ctx, tenant, channel, t2 - timedelta(minutes=1), ok=0, failed=10)
    [r] = await health.run(ctx, t2, alert_delays=fast)
    assert (r.status, r.failure_rate) == ("unhealthy", 0.6)
    # An hour later the window is empty → unknown.
    [r] = await health.run(ctx, t2 + timedelta(minutes=61), alert_delays=fast)
    assert (r.previous_status, r.status) == ("unhealthy", "unknown")
    assert [p["status"] for e, p in events] == ["degraded", "unhealthy", "unknown"]
    assert len(rec.requests) == 4
    rows = await ctx.db.read(lambda c: c.execute(
        "SELECT count(*) FROM channel_health_checks WHERE channel_id = ?", (channel.id,)).fetchone()[0])
    assert rows == 5

    # Pruning keeps 7 days.
    assert await expiry.prune(ctx, T0 + timedelta(days=7, minutes=6)) == 2
    assert await expiry.prune(ctx, T0 + timedelta(days=30)) == 3


async def test_alert_gives_up_after_retries(ctx) -> None:
    tenant, channel, _ = await _tenant_channel(ctx, "http://127.0.0.1:9/nothing-listens")
    await health.run(ctx, T0)
    await _deliveries(ctx, tenant, channel, T0, ok=1, failed=0)
    [r] = await health.run(ctx, T0 + timedelta(minutes=5), alert_delays=(0.01, 0.01))
    assert r.status == "healthy"  # the job finished although the alert could not be sent


async def test_conversation_expiry(ctx) -> None:
    tenant, channel, _ = await _tenant_channel(ctx, None)
    now = T0 + timedelta(days=2)

    def tx(conn):
        old_idle = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id,
                                        now=iso(now - timedelta(hours=25)))
        old_busy = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id,
                                        now=iso(now - timedelta(hours=25)))
        activities.insert(conn, tenant_id=tenant.id, conversation_id=old_busy.id, sender="u",
                          now=iso(now - timedelta(hours=1)), text="hi")
        old_quiet = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id,
                                         now=iso(now - timedelta(hours=30)))
        activities.insert(conn, tenant_id=tenant.id, conversation_id=old_quiet.id, sender="u",
                          now=iso(now - timedelta(hours=26)), text="long ago")
        young = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id,
                                     now=iso(now - timedelta(hours=1)))
        return old_idle.id, old_busy.id, old_quiet.id, young.id

    ids = await ctx.db.write(tx)
    assert await expiry.run(ctx, now) == 2
    statuses = await ctx.db.read(lambda c: [
        conversations.get(c, i).status for i in ids])  # type: ignore[union-attr]
    assert statuses == ["closed", "active", "closed", "active"]
    assert await expiry.run(ctx, now) == 0
    # The idle time is a setting.
    ctx.settings.conversation_idle = 1800
    assert await expiry.run(ctx, now) == 2


async def test_scheduler_runs_due_jobs_with_an_injected_clock() -> None:
    clock = [T0]
    sched = Scheduler(log, clock=lambda: clock[0])
    calls: list[tuple[str, datetime]] = []

    async def job(name: str, now: datetime) -> None:
        calls.append((name, now))
        if name == "bad":
            raise RuntimeError("boom")

    sched.add("health", 300, lambda now: job("health", now))
    sched.add("expiry", 3600, lambda now: job("expiry", now))
    sched.add("bad", 60, lambda now: job("bad", now))
    sched.add("off", 0, lambda now: job("off", now))
    assert await sched.tick(T0) == []
    assert await sched.tick(T0 + timedelta(seconds=60)) == ["bad"]
    assert sched.jobs["bad"].last_error == "RuntimeError: boom"
    assert await sched.tick(T0 + timedelta(seconds=300)) == ["health", "bad"]
    assert await sched.tick(T0 + timedelta(seconds=3600)) == ["health", "expiry", "bad"]
    assert "off" not in sched.jobs
    assert [c[0] for c in calls].count("health") == 2
