"""Background jobs with an injected clock: health transitions (reference §12) with a signed
alert queued durably and delivered to a real receiver on the retry schedule, conversation expiry
(§13), pruning, the scheduler."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from gateway import config
from gateway.context import Gateway
from gateway.crypto import Cipher
from gateway.domain import channels as channel_ops
from gateway.domain import tenants as tenant_ops
from gateway.hub import Hub, Subscriber
from gateway.tokens import Tokens
from gateway.workers import expiry, health
from gateway.workers.alerts import AlertSender
from gateway.workers.scheduler import Scheduler
from store import activities, alerts, conversations, migrations, queue
from store.db import Database
from store.maintenance import classify
from store.util import iso
from tests.support.serving import serving

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
async def ctx(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = config.load({}, data_dir=str(tmp_path), outbound_allow="127.0.0.0/8")
    db = Database(tmp_path / "jobs.db")
    db.start(prepare=migrations.apply)
    ctx = Gateway(settings=settings, log=log, cipher=Cipher("k" * 32), tokens=Tokens("k" * 32),
                  hub=Hub())
    ctx.attach(db)
    ctx.alerts = AlertSender(ctx)
    await ctx.alerts.start(loop=False)  # the tests run its rounds with their own clock
    yield ctx
    await ctx.alerts.stop()
    db.close()


async def _tenant_channel(ctx: SimpleNamespace, alert_url: str | None, type: str = "webhook") -> tuple[Any, Any, str]:
    def tx(conn):
        tenant, _ = tenant_ops.create_tx(conn, "t", alert_url, "active", ACTOR, iso(T0))
        cfg = {"url": "http://127.0.0.1:9/x"} if type == "webhook" else {}
        channel, secret = channel_ops.create_tx(
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

    # First check: unknown, and no alert (no previous check).
    [r] = await health.run(ctx, T0)
    assert (r.status, r.previous_status, r.total_deliveries) == ("unknown", None, 0)
    assert events == [] and await ctx.alerts.send_due(T0) == [] and rec.requests == []

    # 10 deliveries, 2 failed → degraded: pushed, and an alert queued in the same transaction.
    t1 = T0 + timedelta(minutes=5)
    await _deliveries(ctx, tenant, channel, t1 - timedelta(minutes=1), ok=8, failed=2)
    [r] = await health.run(ctx, t1)
    assert (r.previous_status, r.status, r.failure_rate) == ("unknown", "degraded", 0.2)
    assert events[-1][0] == "health_changed"
    assert events[-1][1] == {
        "channel_id": channel.id, "channel_name": channel.name, "tenant_id": tenant.id,
        "previous_status": "unknown", "status": "degraded", "failure_rate": 0.2,
        "total_deliveries": 10, "failed_deliveries": 2, "checked_at": iso(t1)}
    [queued] = (await ctx.db.read(lambda c: alerts.list_page(c, tenant_id=tenant.id)))[0]
    assert (queued.status, queued.attempts, queued.url) == ("pending", 0, url)

    # The receiver answers 503 first: retried on the deliveries' schedule (30 s), then sent.
    [a] = await ctx.alerts.send_due(t1)
    assert (a.status, a.attempts, a.next_attempt_at) == ("pending", 1, iso(t1 + timedelta(seconds=30)))
    assert a.last_error is not None and "503" in a.last_error
    assert await ctx.alerts.send_due(t1 + timedelta(seconds=29)) == [] and len(rec.requests) == 1
    [a] = await ctx.alerts.send_due(t1 + timedelta(seconds=30))
    assert (a.status, a.attempts, a.last_error) == ("sent", 2, None)
    assert len(rec.requests) == 2  # one failure, one success
    headers, body = rec.requests[-1]
    assert rec.requests[0][0]["webhook-id"] == headers["webhook-id"] == a.id  # same id on retry
    payload = Webhook(secret).verify(body, headers)  # raises if the signature is wrong
    assert payload["event"] == "channel_health_changed"
    assert payload["previous_status"] == "unknown" and payload["new_status"] == "degraded"
    assert payload["total_deliveries"] == 10 and payload["failed_deliveries"] == 2
    assert json.loads(body)["checked_at"] == iso(t1)

    # Same state again: a row, no event, no alert.
    n_events = len(events)
    [r] = await health.run(ctx, t1 + timedelta(minutes=5))
    assert r.status == "degraded" and len(events) == n_events
    assert len((await ctx.db.read(lambda c: alerts.list_page(c, tenant_id=tenant.id)))[0]) == 1

    # Pending deliveries count in the total; 10 more failed → 12/20 → unhealthy.
    t2 = t1 + timedelta(minutes=10)
    await _deliveries(ctx, tenant, channel, t2 - timedelta(minutes=1), ok=0, failed=10)
    [r] = await health.run(ctx, t2)
    assert (r.status, r.failure_rate) == ("unhealthy", 0.6)
    assert [a.status for a in await ctx.alerts.send_due(t2)] == ["sent"]
    # An hour later the window is empty → unknown.
    t3 = t2 + timedelta(minutes=61)
    [r] = await health.run(ctx, t3)
    assert (r.previous_status, r.status) == ("unhealthy", "unknown")
    assert [a.status for a in await ctx.alerts.send_due(t3)] == ["sent"]
    assert [p["status"] for e, p in events] == ["degraded", "unhealthy", "unknown"]
    assert len(rec.requests) == 4
    assert [json.loads(b)["new_status"] for _, b in rec.requests[1:]] == ["degraded", "unhealthy", "unknown"]
    rows = await ctx.db.read(lambda c: c.execute(
        "SELECT count(*) FROM channel_health_checks WHERE channel_id = ?", (channel.id,)).fetchone()[0])
    assert rows == 5

    # Pruning keeps 7 days of health checks and of finished alerts.
    assert await expiry.prune(ctx, T0 + timedelta(days=7, minutes=6)) == 2 + 1
    assert await expiry.prune(ctx, T0 + timedelta(days=30)) == 3 + 2
    assert (await ctx.db.read(lambda c: alerts.list_page(c, tenant_id=tenant.id)))[0] == []


async def test_alert_fails_after_five_attempts_without_blocking_the_job(ctx) -> None:
    tenant, channel, _ = await _tenant_channel(ctx, "http://127.0.0.1:9/nothing-listens")
    await health.run(ctx, T0)
    await _deliveries(ctx, tenant, channel, T0, ok=1, failed=0)
    t = T0 + timedelta(minutes=5)
    [r] = await health.run(ctx, t)
    assert r.status == "healthy"  # the job finished; the alert waits in the queue
    seen = []
    for wait in (0, 30, 90, 270, 810):  # the deliveries' backoff, 3^n × 10 s
        t += timedelta(seconds=wait)
        [a] = await ctx.alerts.send_due(t)
        seen.append((a.status, a.attempts))
    assert seen == [("pending", 1), ("pending", 2), ("pending", 3), ("pending", 4), ("failed", 5)]
    assert "webhook request failed" in (a.last_error or "")
    assert await ctx.alerts.send_due(t + timedelta(days=1)) == []  # failed is final


async def test_alert_gone_410_fails_at_once(ctx) -> None:
    hits = []

    async def gone(request: web.Request) -> web.Response:
        hits.append(request.headers["webhook-id"])
        return web.Response(status=410, text="unsubscribed")

    app = web.Application()
    app.router.add_post("/gone", gone)
    async with serving(app) as base:
        tenant, channel, _ = await _tenant_channel(ctx, f"{base}/gone")
        await health.run(ctx, T0)
        await _deliveries(ctx, tenant, channel, T0, ok=1, failed=0)
        await health.run(ctx, T0 + timedelta(minutes=5))
        [a] = await ctx.alerts.send_due(T0 + timedelta(minutes=5))
        assert (a.status, a.attempts) == ("failed", 1)
        assert a.last_error == "webhook returned status 410"  # no body echoed (issue 13)
        assert hits == [a.id]  # one attempt, never again
        assert await ctx.alerts.send_due(T0 + timedelta(days=1)) == [] and hits == [a.id]


async def test_finished_deliveries_pruned_after_their_retention(ctx, monkeypatch) -> None:
    tenant, channel, _ = await _tenant_channel(ctx, None)
    monkeypatch.setattr(expiry, "PRUNE_BATCH", 2)  # several batches

    def tx(conn):
        conv = conversations.create(conn, tenant_id=tenant.id, channel_id=channel.id, now=iso(T0))
        made = {}
        for status, at in (("sent", T0), ("read", T0), ("failed", T0), ("delivered", T0),
                           ("pending", T0), ("sent", T0 + timedelta(days=20))):
            a = activities.insert(conn, tenant_id=tenant.id, conversation_id=conv.id, sender="u",
                                  now=iso(at), text=status)
            queue.enqueue(conn, a, [channel.id], iso(at))
            conn.execute("UPDATE deliveries SET status = ? WHERE activity_id = ?", (status, a.id))
            made[a.id] = (status, at)
        return made

    made = await ctx.db.write(tx)

    def left(conn):
        return {r[0]: r[1] for r in conn.execute("SELECT activity_id, status FROM deliveries")}

    later = T0 + timedelta(days=31)
    assert ctx.settings.delivery_retention_days == 0  # the default keeps every delivery
    assert await expiry.prune(ctx, later) == 0 and len(await ctx.db.read(left)) == 6

    ctx.settings = msgspec.structs.replace(ctx.settings, delivery_retention_days=30)
    assert await expiry.prune(ctx, later) == 4  # sent, read, failed, delivered of day 0
    kept = await ctx.db.read(left)
    assert sorted(kept.values()) == ["pending", "sent"]  # waiting work, and the recent one
    assert all(made[a][1] == T0 + timedelta(days=20) or made[a][0] == "pending" for a in kept)
    n_activities = await ctx.db.read(lambda c: c.execute("SELECT count(*) FROM activities").fetchone()[0])
    assert n_activities == 6  # only delivery rows go
    assert await expiry.prune(ctx, later) == 0


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


async def test_a_first_check_that_finds_a_channel_unhealthy_alerts(ctx, receiver) -> None:
    rec, url = receiver
    tenant, channel, _ = await _tenant_channel(ctx, url)
    events: list[tuple[str, Any]] = []
    ctx.hub.subscribe("channel_health", Subscriber(lambda e, p: events.append((e, p)) or True))
    await _deliveries(ctx, tenant, channel, T0 - timedelta(minutes=1), ok=0, failed=5)
    [r] = await health.run(ctx, T0)
    assert (r.previous_status, r.status) == (None, "unhealthy")
    assert events and events[-1][1]["status"] == "unhealthy"
    [queued] = (await ctx.db.read(lambda c: alerts.list_page(c, tenant_id=tenant.id)))[0]
    assert queued.status == "pending"
    assert [a.status for a in await ctx.alerts.send_due(T0)] in (["sent"], ["pending"])
