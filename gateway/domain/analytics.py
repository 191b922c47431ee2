"""Analytics (docs/analytics.md): the range a request asks for, and the report over the rollup
tables for a tenant (or the whole gateway) and optionally one channel — the same figures for the
management API, the tenant's API, the CSV export and the pages."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, datetime
from typing import Any

from store import analytics, channels, dashboard, tenants
from store.util import iso

from ..context import Gateway
from .errors import NotFound

RANGES = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
DEFAULT_RANGE = "1d"
MAX_SPAN = 400 * 86400
MIN_SPAN = 60


class BadRange(ValueError):
    """A range or interval the analytics cannot answer (400, with ``code``)."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.code = code


class Window(tuple[int, int, int, str]):
    """``(start, end, step, label)``: Unix seconds, bucket size, the range's name."""

    @property
    def start(self) -> int:
        return self[0]

    @property
    def end(self) -> int:
        return self[1]

    @property
    def step(self) -> int:
        return self[2]

    @property
    def label(self) -> str:
        return self[3]


def _when(value: str, name: str) -> int:
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise BadRange(f"{name} is not an ISO 8601 time", "invalid_interval") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def step_for(start: int, span: int, now: int) -> int:
    """The bucket size: minutes up to 3 hours, hours up to 8 days, else days — coarser when
    the finer buckets are no longer kept that far back."""
    step = analytics.MINUTE if span <= 3 * 3600 else analytics.HOUR if span <= 8 * 86400 \
        else analytics.DAY
    if step == analytics.MINUTE and start < now - analytics.KEEP[analytics.MINUTE] + 3600:
        step = analytics.HOUR
    if step == analytics.HOUR and start < now - analytics.KEEP[analytics.HOUR] + 86400:
        step = analytics.DAY
    return step


def window(args: dict[str, str | None], now: datetime) -> Window:
    """The window of ``range`` (``1h``, ``1d``, ``7d``, ``30d``; default ``1d``) up to now, or
    of ``from``/``to`` (ISO 8601; ``to`` defaults to now)."""
    rng, frm, to = args.get("range"), args.get("from"), args.get("to")
    t_now = int(now.timestamp())
    if frm or to:
        if rng:
            raise BadRange("give either range or from/to", "invalid_interval")
        if not frm:
            raise BadRange("from is required with to", "invalid_interval")
        start, end = _when(frm, "from"), _when(to, "to") if to else t_now
        span = end - start
        if span < MIN_SPAN:
            raise BadRange("to must be at least a minute after from", "invalid_interval")
        if span > MAX_SPAN:
            raise BadRange(f"an interval spans at most {MAX_SPAN // 86400} days",
                           "invalid_interval")
        step = step_for(start, span, t_now)
        # Whole buckets: the first and the last widened to their bucket's bounds.
        start -= start % step
        end += -end % step
        return Window((start, end, step, "custom"))
    rng = rng or DEFAULT_RANGE
    if rng not in RANGES:
        raise BadRange(f"range must be one of {', '.join(RANGES)}", "invalid_range")
    span = RANGES[rng]
    step = step_for(t_now - span, span, t_now)
    # Whole buckets: the last one is the one now is in.
    end = t_now - t_now % step + step
    return Window((end - span, end, step, rng))


def _iso(t: int) -> str:
    return iso(datetime.fromtimestamp(t, UTC))


def read(conn: sqlite3.Connection, w: Window, *, tenant_id: str | None,
         channel_id: str | None) -> dict[str, Any]:
    """The report (a read; ``NotFound`` for an unknown tenant, or a channel that is not the
    tenant's — the same answer for another tenant's channel as for none)."""
    if tenant_id is not None and tenants.get(conn, tenant_id) is None:
        raise NotFound("tenant")
    if channel_id is not None:
        ch = channels.get(conn, channel_id)
        if ch is None or (tenant_id is not None and ch.tenant_id != tenant_id):
            raise NotFound("channel")
    r = analytics.report(conn, w.start, w.end, w.step, tenant_id=tenant_id,
                         channel_id=channel_id)
    health = analytics.health(conn, _iso(w.start), _iso(w.end), tenant_id=tenant_id,
                              channel_id=channel_id)
    ids = set(r["channels"]) | set(health) | {c["channel_id"] for c in r["conversations"]
                                              if c["channel_id"]}
    names = _names(conn, ids)
    delivered = sum(sum(r["deliveries"][k]) for k in ("sent",))
    failed = sum(r["deliveries"]["failed"])
    return {
        "range": w.label, "from": _iso(w.start), "to": _iso(w.end), "step": w.step,
        "tenant_id": tenant_id, "channel_id": channel_id,
        "buckets": [_iso(b) for b in r["buckets"]],
        "activities": r["activities"], "deliveries": r["deliveries"],
        "totals": {"activities_in": sum(r["activities"]["in"]),
                   "activities_out": sum(r["activities"]["out"]),
                   **{f"deliveries_{k}": sum(v) for k, v in r["deliveries"].items()},
                   "success_rate": round(delivered / (delivered + failed), 4)
                   if delivered + failed else None},
        "latency": r["latency"],
        "failures": r["failures"],
        "conversations": r["conversations"],
        "channels": [{"channel_id": cid, "name": names.get(cid, ""),
                      **r["channels"].get(cid, dict.fromkeys(analytics.COUNTS, 0)),
                      "health": health.get(cid, [])}
                     for cid in sorted(set(r["channels"]) | set(health),
                                       key=lambda c: names.get(c, c))],
    }


def _names(conn: sqlite3.Connection, ids: set[str]) -> dict[str, str]:
    return dashboard.names(conn, "channels", ids)


async def report(gw: Gateway, w: Window, *, tenant_id: str | None,
                 channel_id: str | None) -> dict[str, Any]:
    return await gw.db.read(lambda conn: read(conn, w, tenant_id=tenant_id,
                                              channel_id=channel_id))


CSV_COLUMNS = ("time", "activities_in", "activities_out", "deliveries_sent",
               "deliveries_delivered", "deliveries_read", "deliveries_failed",
               "deliveries_skipped")


def to_csv(data: dict[str, Any]) -> str:
    """The report's series as CSV: one row per bucket (its start, ISO 8601 UTC)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    series = [data["activities"]["in"], data["activities"]["out"],
              *(data["deliveries"][k] for k in ("sent", "delivered", "read", "failed", "skipped"))]
    for i, bucket in enumerate(data["buckets"]):
        writer.writerow([bucket, *(s[i] for s in series)])
    return out.getvalue()


def tier_usage(conn: sqlite3.Connection, tenant_id: str, now: datetime) -> dict[str, Any]:
    """The tenant's tier, its usage against the tier's limits and its SLA figures (the portal's
    tier page): activities in the current minute and the busiest minute of the last hour, the
    busiest channel-minute of deliveries, channels; delivery success and latency over the last
    day and 30 days."""
    from store import tiers

    t_now = int(now.timestamp())
    minute = t_now - t_now % analytics.MINUTE
    per_minute = analytics.activity_minutes(conn, tenant_id, minute - 3600)
    row = conn.execute(
        """SELECT channel_id, bucket, sum(n) AS total FROM analytics_minute
            WHERE tenant_id = ? AND bucket >= ? AND kind = 'count' AND key IN ('sent', 'failed')
            GROUP BY channel_id, bucket ORDER BY total DESC LIMIT 1""",
        (tenant_id, minute - 3600)).fetchone()
    sla = {}
    for label in ("1d", "30d"):
        w = window({"range": label}, now)
        r = analytics.report(conn, w.start, w.end, w.step, tenant_id=tenant_id, top=0)
        sent, failed = sum(r["deliveries"]["sent"]), sum(r["deliveries"]["failed"])
        sla[label] = {"sent": sent, "failed": failed,
                      "success_rate": round(sent / (sent + failed), 4) if sent + failed else None,
                      "latency": r["latency"]}
    return {
        "tier": tiers.of_tenant(conn, tenant_id),
        "usage": {"activities_this_minute": per_minute.get(minute, 0),
                  "activities_busiest_minute": max(per_minute.values(), default=0),
                  "deliveries_busiest_channel_minute": int(row[2]) if row else 0,
                  "channels": len(channels.for_tenant(conn, tenant_id))},
        "sla": sla,
    }
