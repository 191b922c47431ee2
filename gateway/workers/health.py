"""Channel health (docs/operations.md): every run checks each active external channel's failure
rate over the last hour, records it, and on a change pushes ``health_changed`` on the hub topics
``channel_health`` (the admin dashboard) and ``channel_health:<tenant id>`` (the tenant's
portal and sockets), and alerts the tenant's ``alert_webhook_url``.

The alert goes through a durable queue, not fire-and-forget as in the original: it is written to
the ``alerts`` table in the same transaction as the check that raised it, and the alert sender
(:mod:`gateway.workers.alerts`) delivers it signed and retried like a webhook delivery.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

import msgspec

import adapters
from store import alerts, feed, maintenance
from store.maintenance import HealthResult
from store.util import iso

WINDOW = timedelta(minutes=60)
EVENT = "channel_health_changed"
_encode = msgspec.json.Encoder().encode


def event_payload(r: HealthResult) -> dict[str, Any]:
    """The ``health_changed`` hub payload (the original's keys, docs/realtime.md)."""
    return {"channel_id": r.channel_id, "channel_name": r.channel_name, "tenant_id": r.tenant_id,
            "previous_status": r.previous_status, "status": r.status,
            "failure_rate": r.failure_rate, "total_deliveries": r.total_deliveries,
            "failed_deliveries": r.failed_deliveries, "checked_at": r.checked_at}


def alert_body(r: HealthResult) -> dict[str, Any]:
    """The alert webhook's JSON (the original's keys, docs/operations.md)."""
    return {"event": EVENT, "channel_id": r.channel_id,
            "channel_name": r.channel_name, "tenant_id": r.tenant_id,
            "previous_status": r.previous_status, "new_status": r.status,
            "failure_rate": r.failure_rate, "total_deliveries": r.total_deliveries,
            "failed_deliveries": r.failed_deliveries, "checked_at": r.checked_at}


def check_tx(conn: sqlite3.Connection, since: str, now: str) -> tuple[list[HealthResult], int]:
    """Check every channel and queue an alert per change with an alert URL, in one transaction.
    Returns the results and how many alerts were queued."""
    results = maintenance.check_channels(conn, since, now, tuple(sorted(adapters.DELIVERING_TYPES)))
    return results, _alert(conn, results, now)


def _alert(conn: sqlite3.Connection, results: list[HealthResult], now: str) -> int:
    queued = 0
    for r in results:
        if r.changed:
            feed.append(conn, "h", "channel_health", event_payload(r))
        if r.changed and r.alert_webhook_url:
            alerts.enqueue(conn, tenant_id=r.tenant_id, channel_id=r.channel_id, event=EVENT,
                           url=r.alert_webhook_url, body=_encode(alert_body(r)).decode(), now=now)
            queued += 1
    return queued


def unhealthy_tx(conn: sqlite3.Connection, channel_id: str, since: str,
                 now: str) -> tuple[list[HealthResult], int]:
    """Mark one channel unhealthy now, with its alert when that is a change."""
    result = maintenance.mark_unhealthy(conn, channel_id, since, now)
    results = [result] if result is not None else []
    return results, _alert(conn, results, now)


async def run(ctx: Any, now: datetime) -> list[HealthResult]:
    """One health run at ``now``. Returns every channel's result."""
    results, queued = await ctx.db.write(check_tx, iso(now - WINDOW), iso(now))
    _announce(ctx, results, queued)
    return results


async def mark_unhealthy(ctx: Any, channel_id: str, now: datetime) -> None:
    """A provider refused the channel's credentials: the channel is ``unhealthy`` now (the
    hub event and the tenant's alert when that is a change), not at the next health run."""
    results, queued = await ctx.db.write(unhealthy_tx, channel_id, iso(now - WINDOW), iso(now))
    _announce(ctx, results, queued)


def _announce(ctx: Any, results: list[HealthResult], queued: int) -> None:
    for r in results:
        if r.changed:
            ctx.hub.announce_health(event_payload(r))
            ctx.log.info("Channel health changed for %s (%s): %s -> %s", r.channel_name,
                         r.channel_id, r.previous_status, r.status)
    sender = ctx.alerts
    if queued and sender is not None:
        sender.wake()
