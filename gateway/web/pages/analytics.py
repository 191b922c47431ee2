"""Analytics, in both areas (docs/analytics.md): charts of activities and deliveries over time,
delivery latency percentiles, failure reasons, busiest conversations and channel health over
the chosen range — for the whole gateway or one tenant (admin), the signed-in user's tenant
(portal). The charts are drawn by uPlot (vendored in ``static/``) from the same report the API
serves; ``analytics.json`` refreshes them while the page is open, ``analytics.csv`` exports it.
In the portal a channel of another tenant is not a filter: the page shows the tenant's own."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, raw

from store import dashboard, tenants
from store.util import parse_iso

from ... import errors
from ...domain import NotFound
from ...domain import analytics as analytics_ops
from ...http import gw, json
from .. import kit
from ..kit import arg, render
from . import both

STAGES = (("sent", "Accepted → sent"), ("delivered", "Sent → delivered"),
          ("read", "Delivered → read"))


async def _report(request: Request) -> tuple[dict[str, Any] | None,
                                             analytics_ops.BadRange | None, dict[str, Any]]:
    """(the report or None, the range's error, the filters as applied)."""
    tenant_id = kit.scope(request)
    channel_id = arg(request, "channel_id")
    channel_id = channel_id if kit.is_uuid(channel_id) else None
    args = {k: arg(request, k) for k in ("range", "from", "to")}
    try:
        window = analytics_ops.window(args, parse_iso(gw(request).now_iso()))
    except analytics_ops.BadRange as exc:
        return None, exc, {"tenant_id": tenant_id, "channel_id": channel_id}
    try:
        data = await analytics_ops.report(gw(request), window, tenant_id=tenant_id,
                                          channel_id=channel_id)
    except NotFound:  # a channel (or, for an admin, a tenant) that is not there: show all
        channel_id = None
        if request.ctx.area == "admin" and tenant_id is not None:
            tenant_id = kit.scope_default(request)
        data = await analytics_ops.report(gw(request), window, tenant_id=tenant_id,
                                          channel_id=None)
    return data, None, {"tenant_id": tenant_id, "channel_id": channel_id}


@both("/analytics", "analytics")
async def analytics_page(request: Request) -> HTTPResponse:
    data, error, applied = await _report(request)

    def read(conn: Any) -> dict[str, Any]:
        tenant = tenants.get(conn, applied["tenant_id"]) if applied["tenant_id"] else None
        convs = {c["conversation_id"] for c in (data or {}).get("conversations", [])}
        return {"tenant": tenant,
                "channel_list": dashboard.all_names(conn, "channels", applied["tenant_id"]),
                "tenant_list": dashboard.all_names(conn, "tenants")
                if request.ctx.area == "admin" else [],
                "tenant_names": dashboard.names(
                    conn, "tenants", {c["tenant_id"] for c in (data or {}).get(
                        "conversations", [])}) if request.ctx.area == "admin" else {},
                "conversation_names": _contacts(conn, convs)}

    extra = await request.app.ctx.db.read(read)
    if error:
        kit.flash(request, str(error), "error")
    query = {k: v for k, v in {**applied, "range": (data or {}).get("range")}.items()
             if v and (k != "tenant_id" or request.ctx.area == "admin")}
    return render(request, "analytics.html", status=400 if error else 200, data=data,
                  applied=applied, ranges=list(analytics_ops.RANGES), stages=STAGES,
                  query="&".join(f"{k}={v}" for k, v in query.items() if k != "range"),
                  **extra)


def _contacts(conn: Any, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, sender_key FROM conversations WHERE id IN ({marks})",
                        list(ids)).fetchall()
    return {r[0]: r[1] or "" for r in rows}


@both("/analytics.json", "analytics_json")
async def analytics_json(request: Request) -> HTTPResponse:
    data, error, _ = await _report(request)
    if data is None:
        assert error is not None
        raise errors.bad_request(str(error), error.code)
    return json({"data": data}, headers={"cache-control": "no-store"})


@both("/analytics.csv", "analytics_csv")
async def analytics_csv(request: Request) -> HTTPResponse:
    data, error, _ = await _report(request)
    if data is None:
        assert error is not None
        raise errors.bad_request(str(error), error.code)
    return raw(analytics_ops.to_csv(data).encode(), content_type="text/csv; charset=utf-8",
               headers={"content-disposition":
                        f'attachment; filename="analytics-{data["range"]}.csv"',
                        "cache-control": "no-store"})
