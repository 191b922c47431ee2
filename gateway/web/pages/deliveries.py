"""Deliveries, in both areas: the list (filtered by status and channel, with counts) and the
retry buttons (one delivery, or every failed delivery of a channel). In the portal every query
and retry is limited to the signed-in user's tenant."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse

from store import audit, dashboard, queue

from ...auth import actor
from .. import kit
from ..kit import arg, back, flash, form, render
from . import AREAS

DELIVERY_STATUSES = ("pending", "sent", "delivered", "read", "failed")


def _wake(request: Request, n: int) -> None:
    # Workers sleep until told: wake them once the retried rows are committed.
    for hook in request.app.ctx.on_enqueue:
        hook(None, n)


async def deliveries_page(request: Request) -> HTTPResponse:
    tenant_id = kit.scope(request)
    channel_id = arg(request, "channel_id")
    status = arg(request, "status")

    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = queue.list_page(
                conn, tenant_id=tenant_id, status=status if status in DELIVERY_STATUSES else None,
                channel_id=channel_id if kit.is_uuid(channel_id) else None, limit=50,
                cursor=arg(request, "cursor"))
        except ValueError:
            items, nxt = [], None
        return {"deliveries": items, "next": nxt, "statuses": DELIVERY_STATUSES,
                "counts": queue.counts_by_status(conn, tenant_id),
                "channel_list": dashboard.all_names(conn, "channels", tenant_id),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "channel_names": dashboard.names(conn, "channels", {d.channel_id for d in items}),
                "tenant_names": dashboard.names(conn, "tenants", {d.tenant_id for d in items})}

    return render(request, "deliveries.html", **await request.app.ctx.db.read(read))


async def delivery_retry(request: Request, delivery_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    tenant_id = kit.own_tenant(request)
    who, now = actor(request), ctx.now_iso()

    def tx(conn: Any) -> Any:
        found = queue.get(conn, str(delivery_id))
        if found is None or (tenant_id and found.tenant_id != tenant_id):
            return None
        retried = queue.retry_now(conn, found.id, now)
        if retried is not None:
            audit.record(conn, actor_type=who[0], actor_id=who[1], action="retry",
                         resource_type="delivery", resource_id=found.id, tenant_id=found.tenant_id,
                         now=now, before={"status": found.status, "attempts": found.attempts,
                                          "last_error": found.last_error},
                         after={"status": retried.status})
        return retried

    retried = await ctx.db.write(tx)
    if retried is not None:
        _wake(request, 1)
    flash(request, "Delivery queued for retry" if retried else "This delivery cannot be retried now",
          "ok" if retried else "error")
    return back(request, f"/{request.ctx.area}/deliveries")


async def deliveries_retry_failed(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    channel_id = form(request, "channel_id")
    tenant_id = kit.own_tenant(request)
    if not kit.is_uuid(channel_id):
        flash(request, "Choose a channel", "error")
        return back(request, f"/{request.ctx.area}/deliveries")
    who, now = actor(request), ctx.now_iso()

    def tx(conn: Any) -> int:
        n = dashboard.retry_failed_of_channel(conn, channel_id, now, tenant_id)
        if n:
            owner = conn.execute("SELECT tenant_id FROM channels WHERE id = ?",
                                 (channel_id,)).fetchone()
            audit.record(conn, actor_type=who[0], actor_id=who[1], action="retry_failed",
                         resource_type="channel", resource_id=channel_id,
                         tenant_id=owner[0] if owner else None, now=now, after={"retried": n})
        return n

    n = await ctx.db.write(tx)
    if n:
        _wake(request, n)
    flash(request, f"{n} failed deliveries queued for retry")
    return back(request, f"/{request.ctx.area}/deliveries")


for _bp in AREAS:
    _area = (_bp.url_prefix or "").strip("/")
    _bp.add_route(deliveries_page, "/deliveries", name=f"{_area}_deliveries")
    _bp.add_route(delivery_retry, "/deliveries/<delivery_id:uuid>/retry", methods=["POST"],
                  name=f"{_area}_delivery_retry")
    _bp.add_route(deliveries_retry_failed, "/deliveries/retry_failed", methods=["POST"],
                  name=f"{_area}_retry_failed")
