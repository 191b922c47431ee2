"""The analytics rollup job (docs/analytics.md): minutes folded into hours, hours into days, old
buckets dropped — and every hour newly folded checked against the SLA targets of the tenants'
tiers, a miss raising the tenant's alert webhook (``sla_breach``, docs/admin.md#sla-tiers) —
one transaction per run. The scheduler runs it, and only the process that holds the scheduler's
lease runs the scheduler (``--workers N``); the fold recomputes what it writes and an hour is
checked once (its mark in the same transaction), so a run repeated changes nothing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import msgspec

from store import alerts, analytics
from store.util import iso

EVENT = "sla_breach"
_encode = msgspec.json.Encoder().encode


def run_tx(conn: sqlite3.Connection, now: int) -> dict[str, int]:
    result = analytics.fold(conn, now)
    queued = 0
    stamp = iso(datetime.fromtimestamp(now, UTC))
    for hour in analytics.unchecked_hours(conn):
        for b in analytics.breaches(conn, hour):
            if not b["url"]:
                continue
            body = {"event": EVENT, **{k: v for k, v in b.items() if k not in ("url", "hour")},
                    "hour": iso(datetime.fromtimestamp(hour, UTC))}
            alerts.enqueue(conn, tenant_id=b["tenant_id"], channel_id=b["channel_id"],
                           event=EVENT, url=b["url"], body=_encode(body).decode(), now=stamp)
            queued += 1
    return {**result, "alerts": queued}


async def run(ctx: Any, now: datetime) -> dict[str, int]:
    result: dict[str, int] = await ctx.db.write(run_tx, int(now.timestamp()))
    if result["alerts"] and ctx.alerts is not None:
        ctx.alerts.wake()
    return result
