"""Deliveries, in both areas: the list (filtered by status and channel, with counts) and the
retry buttons (one delivery, or every failed delivery of a channel). In the portal every query
and retry is limited to the signed-in user's tenant."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import dashboard, queue

from ...auth import actor
from ...domain import Conflict, NotFound
from ...domain import deliveries as delivery_ops
from ...http import gw
from .. import kit
from ..kit import arg, back, flash, form, render
from . import both

DELIVERY_STATUSES = delivery_ops.STATUSES


@both("/deliveries", "deliveries")
async def deliveries_page(request: Request) -> HTTPResponse:
    tenant_id = kit.scope(request)
    status = arg(request, "status")
    # Filters by channel, message (a timeline row's link) and conversation; the counts follow.
    filters = {k: v if kit.is_uuid(v := arg(request, k)) else None
               for k in ("channel_id", "activity_id", "conversation_id")}

    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = queue.list_page(
                conn, tenant_id=tenant_id, status=status if status in DELIVERY_STATUSES else None,
                limit=50, cursor=arg(request, "cursor"), **filters)
        except ValueError:
            items, nxt = [], None
        return {"deliveries": items, "next": nxt, "statuses": DELIVERY_STATUSES,
                "counts": queue.counts_by_status(conn, tenant_id, **filters),
                "channel_list": dashboard.all_names(conn, "channels", tenant_id),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "channel_names": dashboard.names(conn, "channels", {d.channel_id for d in items}),
                "tenant_names": dashboard.names(conn, "tenants", {d.tenant_id for d in items})}

    return render(request, "deliveries.html", **await request.app.ctx.db.read(read))


@both("/deliveries/<delivery_id:uuid>/retry", "delivery_retry", ("POST",))
async def delivery_retry(request: Request, delivery_id: Any) -> HTTPResponse:
    try:
        await delivery_ops.retry(gw(request), actor(request), str(delivery_id),
                                 tenant_id=kit.own_tenant(request))
        retried = True
    except (NotFound, Conflict):
        retried = False
    flash(request, "Delivery queued for retry" if retried else "This delivery cannot be retried now",
          "ok" if retried else "error")
    return back(request, f"/{request.ctx.area}/deliveries")


@both("/deliveries/retry_failed", "retry_failed", ("POST",))
async def deliveries_retry_failed(request: Request) -> HTTPResponse:
    """Every failed delivery under the page's filters (tenant, channel, message, conversation)."""
    filters = {k: v if kit.is_uuid(v := form(request, k)) else None
               for k in ("channel_id", "activity_id", "conversation_id", "tenant_id")}
    if request.ctx.area == "portal":
        filters["tenant_id"] = None
    n = await delivery_ops.retry_failed_matching(gw(request), actor(request), filters,
                                                 tenant_id=kit.own_tenant(request))
    flash(request, f"{n} failed deliveries queued for retry")
    return back(request, f"/{request.ctx.area}/deliveries")


@both("/deliveries/<delivery_id:uuid>", "delivery")
async def delivery_page(request: Request, delivery_id: Any) -> HTTPResponse:
    """One delivery and every attempt of it: time, outcome, the error in full, duration."""
    own = kit.own_tenant(request)

    def read(conn: Any) -> dict[str, Any] | None:
        d = queue.get(conn, str(delivery_id))
        if d is None or (own is not None and d.tenant_id != own):
            return None
        return {"d": d, "attempts": queue.attempts_of(conn, d.id),
                "channel_name": dashboard.names(conn, "channels", {d.channel_id}).get(d.channel_id),
                "tenant_name": dashboard.names(conn, "tenants", {d.tenant_id}).get(d.tenant_id)}

    data = await request.app.ctx.db.read(read)
    if data is None:
        flash(request, "Delivery not found", "error")
        return redirect(f"/{request.ctx.area}/deliveries")
    return render(request, "delivery.html", **data)
