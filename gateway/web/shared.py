"""Pages both areas have, scoped by tenant: conversations (list, detail with a live timeline),
deliveries (filter, retry) and routing rules. In ``/admin`` the scope is every tenant (or the
filter); in ``/portal`` it is the signed-in user's tenant, checked on every query."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect, text

from store import audit, conversations, dashboard, queue, routing, tenants

from .. import errors
from ..domain import RoutingRuleFields, delete_rule_tx, save_rule_tx
from . import common
from .common import arg, back, flash, form, render

admin_bp = Blueprint("web_admin_shared", url_prefix="/admin")
portal_bp = Blueprint("web_portal_shared", url_prefix="/portal")
DELIVERY_STATUSES = ("pending", "sent", "delivered", "read", "failed")


def scope(request: Request) -> str | None:
    """The tenant a page may show: the portal user's, or the admin's filter (None = all)."""
    if request.ctx.area == "portal":
        return request.ctx.user.tenant_id
    tenant_id = arg(request, "tenant_id")
    return tenant_id if common.is_uuid(tenant_id) else None


def actor(request: Request) -> tuple[str, str]:
    kind = "admin" if request.ctx.area == "admin" else "tenant_user"
    return (kind, request.ctx.user.email)


def _wake(request: Request, n: int) -> None:
    # Workers sleep until told: wake them once the retried rows are committed.
    for hook in request.app.ctx.on_enqueue:
        hook(None, n)


async def conversations_page(request: Request) -> HTTPResponse:
    tenant_id = scope(request)
    channel_id = arg(request, "channel_id")

    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = conversations.list_page(
                conn, tenant_id=tenant_id, status=arg(request, "status"), limit=50,
                channel_id=channel_id if common.is_uuid(channel_id) else None,
                cursor=arg(request, "cursor"))
        except ValueError:
            items, nxt = [], None
        return {"conversations": items, "next": nxt,
                "channel_list": dashboard.all_names(conn, "channels", tenant_id),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "channel_names": dashboard.names(conn, "channels", {c.channel_id for c in items}),
                "tenant_names": dashboard.names(conn, "tenants", {c.tenant_id for c in items})}

    return render(request, "conversations.html", **await request.app.ctx.db.read(read))


def _conversation(conn: Any, request: Request, conversation_id: str) -> Any:
    if request.ctx.area == "portal":
        return conversations.get_for_tenant(conn, request.ctx.user.tenant_id, conversation_id)
    return conversations.get(conn, conversation_id)


async def conversation_page(request: Request, conversation_id: Any) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any] | None:
        conv = _conversation(conn, request, str(conversation_id))
        if conv is None:
            return None
        from store import channels

        return {"conversation": conv, "channel": channels.get(conn, conv.channel_id),
                "tenant": tenants.get(conn, conv.tenant_id),
                "timeline": dashboard.timeline(conn, conv.id)}

    data = await request.app.ctx.db.read(read)
    if data is None:
        flash(request, "Conversation not found", "error")
        return redirect(f"/{request.ctx.area}/conversations")
    return render(request, "conversation.html", **data)


async def timeline_json(request: Request, conversation_id: Any) -> HTTPResponse:
    """What the page's poller fetches every second: the timeline with delivery badges."""
    def read(conn: Any) -> dict[str, Any] | None:
        conv = _conversation(conn, request, str(conversation_id))
        if conv is None:
            return None
        return {"status": conv.status, "items": dashboard.timeline(conn, conv.id)}

    data = await request.app.ctx.db.read(read)
    if data is None:
        return text("Not Found", status=404)
    from ..http import json

    response = json(data)
    response.headers["cache-control"] = "no-store"
    return response


async def deliveries_page(request: Request) -> HTTPResponse:
    tenant_id = scope(request)
    channel_id = arg(request, "channel_id")
    status = arg(request, "status")

    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = queue.list_page(
                conn, tenant_id=tenant_id, status=status if status in DELIVERY_STATUSES else None,
                channel_id=channel_id if common.is_uuid(channel_id) else None, limit=50,
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
    tenant_id = request.ctx.user.tenant_id if request.ctx.area == "portal" else None

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
    tenant_id = request.ctx.user.tenant_id if request.ctx.area == "portal" else None
    if not common.is_uuid(channel_id):
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


async def rules_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    tenant_id = scope(request)

    def read(conn: Any) -> dict[str, Any]:
        from store import channels

        rules = routing.list_all(conn, tenant_id)
        chans = (channels.for_tenant(conn, tenant_id) if tenant_id
                 else channels.list_page(conn, limit=500)[0])
        return {"rules": rules, "channels": chans, "channel_names": {c.id: c.name for c in chans},
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_names": dict(dashboard.all_names(conn, "tenants"))}

    return render(request, "routing_rules.html", status=status,
                  **await request.app.ctx.db.read(read), **extra)


async def rule_toggle(request: Request, rule_id: Any) -> HTTPResponse:
    ctx = request.app.ctx

    def tx(conn: Any) -> Any:
        rule = routing.get(conn, str(rule_id))
        if rule is None or (request.ctx.area == "portal"
                            and rule.tenant_id != request.ctx.user.tenant_id):
            return None
        return save_rule_tx(conn, rule.tenant_id, rule.id, RoutingRuleFields(enabled=not rule.enabled),
                            actor(request), ctx.now_iso())

    try:
        rule = await ctx.db.write(tx)
    except errors.ApiError as exc:  # enabling can close a cycle
        flash(request, "Cannot enable: " + "; ".join(
            m for msgs in exc.legacy.get("errors", {}).values() for m in msgs), "error")
        return back(request, f"/{request.ctx.area}/routing_rules")
    flash(request, "Rule toggled" if rule else "Rule not found", "ok" if rule else "error")
    return back(request, f"/{request.ctx.area}/routing_rules")


async def rule_create(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    tenant_id = form(request, "tenant_id")
    targets = [t for t in (request.form.getlist("target_channel_ids") if request.form else None)
               or [] if t]
    name, source = form(request, "name"), form(request, "source_channel_id")
    values = {"tenant_id": tenant_id, "name": name, "source_channel_id": source,
              "targets": targets}
    if not common.is_uuid(tenant_id):
        return await rules_page(request, 422, errors={"tenant_id": ["choose a tenant"]},
                                values=values)
    fields = RoutingRuleFields(name=name, source_channel_id=source, target_channel_ids=targets,
                               enabled=True)
    try:
        await ctx.db.write(save_rule_tx, tenant_id, None, fields, actor(request), ctx.now_iso())
    except errors.ApiError as exc:
        return await rules_page(request, 422, errors=exc.legacy.get("errors", {}), values=values)
    flash(request, "Routing rule created")
    return redirect("/admin/routing_rules")


async def rule_delete(request: Request, rule_id: Any) -> HTTPResponse:
    ctx = request.app.ctx

    def tx(conn: Any) -> bool:
        rule = routing.get(conn, str(rule_id))
        return rule is not None and delete_rule_tx(conn, rule.tenant_id, rule.id, actor(request),
                                                   ctx.now_iso())

    ok = await ctx.db.write(tx)
    flash(request, "Rule deleted" if ok else "Rule not found", "ok" if ok else "error")
    return redirect("/admin/routing_rules")


for _bp in (admin_bp, portal_bp):
    area = (_bp.url_prefix or "").strip("/")
    _bp.add_route(conversations_page, "/conversations", name=f"{area}_conversations")
    _bp.add_route(conversation_page, "/conversations/<conversation_id:uuid>",
                  name=f"{area}_conversation")
    _bp.add_route(timeline_json, "/conversations/<conversation_id:uuid>/timeline.json",
                  name=f"{area}_timeline")
    _bp.add_route(deliveries_page, "/deliveries", name=f"{area}_deliveries")
    _bp.add_route(delivery_retry, "/deliveries/<delivery_id:uuid>/retry", methods=["POST"],
                  name=f"{area}_delivery_retry")
    _bp.add_route(deliveries_retry_failed, "/deliveries/retry_failed", methods=["POST"],
                  name=f"{area}_retry_failed")
    _bp.add_route(rules_page, "/routing_rules", name=f"{area}_rules")
    _bp.add_route(rule_toggle, "/routing_rules/<rule_id:uuid>/toggle", methods=["POST"],
                  name=f"{area}_rule_toggle")
admin_bp.add_route(rule_create, "/routing_rules", methods=["POST"], name="admin_rule_create")
admin_bp.add_route(rule_delete, "/routing_rules/<rule_id:uuid>/delete", methods=["POST"],
                   name="admin_rule_delete")
