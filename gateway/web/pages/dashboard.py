"""The admin dashboard: counts, the health of every external channel and the latest alerts."""

from __future__ import annotations

import json
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse

import adapters
from store import alerts, channels, dashboard

from ..kit import render
from . import ADMIN


def _alert_change(body: str) -> tuple[str, str]:
    """``(previous, new)`` health status of an alert's JSON body."""
    try:
        data = json.loads(body)
        return str(data.get("previous_status") or "unknown"), str(data.get("new_status") or "unknown")
    except (ValueError, AttributeError):
        return "unknown", "unknown"


@ADMIN.get("")
async def dashboard_page(request: Request) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any]:
        counts = dashboard.counts(conn)
        health = dashboard.latest_health(conn)
        external = [c for c in channels.list_page(conn, status="active", limit=500)[0]
                    if c.type in adapters.DELIVERING_TYPES]
        recent = alerts.list_page(conn, limit=10)[0]
        names = dashboard.names(conn, "tenants", {c.tenant_id for c in external}
                                | {a.tenant_id for a in recent})
        channel_names = dashboard.names(conn, "channels", {a.channel_id for a in recent})
        return {"counts": counts, "health": health, "external": external, "tenant_names": names,
                "alerts": [(a, _alert_change(a.body)) for a in recent],
                "channel_names": channel_names}

    return render(request, "admin/dashboard.html", **await request.app.ctx.db.read(read))
