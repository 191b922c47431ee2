"""SLA tiers in the pages (docs/admin.md#sla-tiers): the admin's list of tiers, with each
tenant's tier and a form that moves a tenant to another; the portal's tier page — the tenant's
tier, its usage against the tier's limits and its SLA figures (delivery success and latency)."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect, text

from store import dashboard, tiers
from store.util import parse_iso

from ...auth import actor
from ...domain import NotFound, ValidationFailed
from ...domain import analytics as analytics_ops
from ...domain import tiers as tier_ops
from ...http import gw
from ..kit import flash, form, render
from . import ADMIN, PORTAL


@ADMIN.get("/tiers")
async def tiers_page(request: Request) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any]:
        on = {r[0]: r[1] for r in conn.execute(
            "SELECT tt.tenant_id, t.name FROM tenant_tiers tt JOIN sla_tiers t ON t.id = tt.tier_id")}
        return {"tiers": tiers.list_all(conn), "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_tiers": on}

    return render(request, "admin/tiers.html", **await request.app.ctx.db.read(read))


@ADMIN.post("/tiers/assign")
async def tier_assign(request: Request) -> HTTPResponse:
    if request.ctx.user.role == "viewer":
        return text("Forbidden: viewers change nothing", status=403)
    tier = form(request, "tier") or None
    try:
        await tier_ops.assign(gw(request), actor(request), form(request, "tenant_id"), tier)
    except NotFound:
        flash(request, "Tenant not found", "error")
    except ValidationFailed:
        flash(request, "No such tier", "error")
    else:
        flash(request, f"Tenant moved to {tier}" if tier else "Tenant is on no tier")
    return redirect("/admin/tiers")


@PORTAL.get("/tier")
async def tier_page(request: Request) -> HTTPResponse:
    tenant_id = request.ctx.user.tenant_id
    now = parse_iso(gw(request).now_iso())
    data = await request.app.ctx.db.read(
        lambda conn: analytics_ops.tier_usage(conn, tenant_id, now))
    return render(request, "portal/tier.html", tenant=request.ctx.tenant, **data)
