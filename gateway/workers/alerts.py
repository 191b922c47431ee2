"""The alert sender: works the ``alerts`` queue table (:mod:`store.alerts`) — the gateway's own
signed webhooks, today the channel health alerts (docs/operations.md).

An alert row is committed together with the health check that raised it, so a crash after the
check cannot lose it. One task claims due alerts, POSTs each signed like a webhook delivery
(Standard Webhooks headers keyed by the channel's secret, plus ``x-converger-signature``; the
``webhook-id`` is the alert's id on every attempt, across restarts too), and records the outcome
with the deliveries' rules: retried after 30, 90, 270, 810 s (or a longer ``Retry-After``),
``failed`` after 5 attempts or at once on ``410``. It sleeps until the next alert is due or new
ones are queued (``wake``). ``send_due(now)`` is one round, for tests with an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import datetime
from typing import Any

import aiohttp

from adapters.base import DeliveryResult
from adapters.webhook import post_signed
from store import alerts, channels
from store.models import Alert
from store.util import iso, parse_iso, utcnow

from .. import outbound
from ..tasks import cancel_and_wait, wait_event

LEASE_SECONDS = 120.0
BATCH = 20
MAX_SLEEP = 60.0


def claim_tx(conn: sqlite3.Connection, now: str, lease: float, limit: int
             ) -> list[tuple[Alert, str | None]]:
    """Claim due alerts, each with its channel's encrypted secret (None: channel gone)."""
    claimed = alerts.claim(conn, now, lease, limit)
    secrets = {c.id: c.secret_enc for c in channels.many(conn, list({a.channel_id for a in claimed}))}
    return [(a, secrets.get(a.channel_id)) for a in claimed]


def outcomes_tx(conn: sqlite3.Connection, done: list[tuple[Alert, DeliveryResult]], now: str,
                scale: float) -> list[Alert | None]:
    out = []
    for alert, r in done:
        token = alert.claim_token or ""
        if r.ok:
            out.append(alerts.complete(conn, alert.id, token, now))
        else:
            out.append(alerts.fail(conn, alert.id, token, now, outbound.summary(r.error) or "failed",
                                   r.retryable, r.retry_after, scale=scale))
    return out


class AlertSender:
    """``ctx.alerts``. Needs ``ctx.db``, ``ctx.cipher``, ``ctx.settings`` and ``ctx.log``."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.scale = ctx.settings.backoff_scale
        self.timeout = ctx.settings.webhook_timeout
        self.lease = ctx.settings.delivery_lease or max(LEASE_SECONDS, 2 * self.timeout + 30)
        self.rescue_every = ctx.settings.lease_rescue_interval
        self.session: aiohttp.ClientSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.rescuer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        self.failed = 0

    async def start(self, *, loop: bool = True) -> None:
        """Reclaim the leases of a previous process, open the HTTP session and (unless
        ``loop=False``, for tests that drive :meth:`send_due` by hand) start the task."""
        released = await self.ctx.db.write(alerts.release_all, iso(utcnow()))
        if released:
            self.ctx.log.info("alerts: reclaimed %d leases of a previous run", released)
        self.session = outbound.session(
            self.ctx.settings,
            aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout))
        if loop:
            self.task = asyncio.create_task(self._loop(), name="alert-sender")
            self.rescuer = asyncio.create_task(self._rescue(), name="alert-rescuer")

    async def stop(self) -> None:
        started = self.session is not None
        tasks = [t for t in (self.task, self.rescuer) if t is not None]
        if tasks:
            await cancel_and_wait(tasks, self.ctx.log, "alerts: stopping")
            self.task = self.rescuer = None
        # Never started here (another worker process is the sender): its leases are not ours.
        if started and self.ctx.db_open:
            with contextlib.suppress(Exception):  # a full disk must not block shutdown
                await self.ctx.db.write(alerts.release_all, iso(utcnow()))
        if self.session is not None:
            await self.session.close()
            self.session = None

    def wake(self) -> None:
        """New alerts were queued: look now."""
        self._wake.set()

    def alive(self) -> dict[str, Any]:
        ok = self.task is not None and not self.task.done()
        return {"ok": ok, "sent": self.sent, "failed": self.failed}

    async def send_due(self, now: datetime) -> list[Alert]:
        """One round at ``now``: claim what is due, send it, record the outcomes. Returns the
        updated rows."""
        assert self.session is not None, "start() first"
        ctx = self.ctx
        claimed = await ctx.db.write(claim_tx, iso(now), self.lease, BATCH)
        if not claimed:
            return []
        results = await asyncio.gather(*(self._send(a, s) for a, s in claimed))
        done = [(a, r) for (a, _), r in zip(claimed, results, strict=True)]
        rows = await ctx.db.write(outcomes_tx, done, iso(now), self.scale)
        out = []
        for (alert, result), row in zip(done, rows, strict=True):
            if row is None:
                continue
            out.append(row)
            if row.status == "sent":
                self.sent += 1
            else:
                ctx.log.warning("alert %s to %s failed (attempt %d, %s): %s", alert.id, alert.url,
                                row.attempts, row.status, result.error)
                self.failed += row.status == "failed"
        return out

    async def _send(self, alert: Alert, secret_enc: str | None) -> DeliveryResult:
        if secret_enc is None:
            return DeliveryResult(ok=False, error="channel no longer exists", retryable=False)
        try:
            secret = self.ctx.cipher.decrypt(secret_enc)
        except Exception as exc:  # a secret sealed with another key: it will never verify
            return DeliveryResult(ok=False, error=f"channel secret unreadable: {exc}",
                                  retryable=False)
        return await post_signed(self.session, alert.url, secret, alert.id, alert.body.encode())

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before the round: a wake-up racing it is not lost
            try:
                while await self.send_due(utcnow()):
                    pass
                due = await self.ctx.db.read(alerts.next_due_at)
                delay = MAX_SLEEP
                if due is not None:
                    delay = min(MAX_SLEEP, (parse_iso(due) - utcnow()).total_seconds())
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. the disk is full: keep going, try again soon
                self.ctx.log.exception("alert sender: round failed")
                delay = 1.0
            if delay > 0:
                await wait_event(self._wake, delay)


    async def _rescue(self) -> None:
        """Give back leases that ran out on this running server (an attempt whose outcome could
        not be recorded, e.g. on a full disk), as the delivery workers do; the alert is then sent
        again with the same ``webhook-id``."""
        while True:
            await asyncio.sleep(self.rescue_every)  # a timer, not a wait for work
            try:
                if await self.ctx.db.write(alerts.rescue_expired, iso(utcnow())):
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged; the next round tries again
                self.ctx.log.error("alert rescuer failed: %s", exc)


def install(app: Any) -> None:
    """Start the sender once the database is open; stop it (leases given back) before it closes."""
    sender = AlertSender(app.ctx)
    app.ctx.alerts = sender

    @app.after_server_start
    async def _start_alerts(app: Any) -> None:
        async def start() -> None:
            app.ctx.readiness["alerts"] = sender.alive
            await sender.start()

        async def stop() -> None:
            app.ctx.readiness.pop("alerts", None)
            await sender.stop()

        from ..cluster import singleton

        await singleton(app, "alert sender", start, stop)

    @app.before_server_stop
    async def _stop_alerts(app: Any) -> None:
        await sender.stop()

