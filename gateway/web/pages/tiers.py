"""SLA tiers in the pages (docs/admin.md#sla-tiers): the admin's list of tiers, with each
tenant's tier and a form that moves a tenant to another, a form that makes a tier and one per
tier that edits (name, description, priority, limits, targets) or deletes it — the management
API's rules (``gateway.domain.tiers.check``), each error shown by its field; the portal's tier
page — the tenant's tier, its usage against the tier's limits and its SLA figures (delivery
success and latency)."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect, text

from store import dashboard, tiers
from store.util import parse_iso

from ...auth import actor
from ...domain import Conflict, NotFound, ValidationFailed
from ...domain import analytics as analytics_ops
from ...domain import tiers as tier_ops
from ...http import gw
from ..kit import flash, form, found, render
from . import ADMIN, PORTAL

# The form's fields: (name, label, kind); kinds: "int" (empty: the gateway-wide setting),
# "rate" (0–1, empty: no target), "text".
FIELDS = (("activities_per_min", "Activities per minute", "int"),
          ("deliveries_per_min", "Deliveries per minute, per channel", "int"),
          ("max_connections", "Open sockets", "int"),
          ("max_upload_bytes", "Largest upload (bytes)", "int"),
          ("retention_days", "Retention (days)", "int"),
          ("max_channels", "Channels", "int"),
          ("target_success_rate", "Target delivery success (0–1)", "rate"),
          ("target_sent_p90_ms", "Target p90 accepted → sent (ms)", "int"))


def _tier_form(request: Request) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, str]]:
    """The posted tier: its fields (as the API takes them), the errors of those that are not
    numbers, and the values as typed (to show the form again)."""
    typed = {name: form(request, name) for name in ("name", "description", "priority",
                                                     *(f[0] for f in FIELDS))}
    fields: dict[str, Any] = {"name": typed["name"], "description": typed["description"]}
    errs: dict[str, list[str]] = {}
    for name, _, kind in (("priority", "", "int"), *FIELDS):
        text_value = typed[name]
        if not text_value:
            fields[name] = 0 if name == "priority" else None
            continue
        try:
            fields[name] = float(text_value) if kind == "rate" else int(text_value)
        except ValueError:
            errs[name] = ["must be a number" if kind == "rate" else "must be a whole number"]
    return fields, errs, typed


async def _tiers_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any]:
        on = {r[0]: r[1] for r in conn.execute(
            "SELECT tt.tenant_id, t.name FROM tenant_tiers tt JOIN sla_tiers t ON t.id = tt.tier_id")}
        return {"tiers": tiers.list_all(conn), "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_tiers": on}

    return render(request, "admin/tiers.html", status=status, fields=FIELDS,
                  **await request.app.ctx.db.read(read), **extra)


@ADMIN.get("/tiers")
async def tiers_page(request: Request) -> HTTPResponse:
    return await _tiers_page(request)


@ADMIN.post("/tiers")
async def tier_create(request: Request) -> HTTPResponse:
    fields, errs, typed = _tier_form(request)
    try:
        if errs:  # every field's error at once: the rules' too
            raise ValidationFailed({**tier_ops.check(fields, creating=True), **errs})
        tier = await tier_ops.create(gw(request), actor(request), fields)
    except ValidationFailed as exc:
        return await _tiers_page(request, 422, errors=exc.fields, values=typed)
    flash(request, f"Tier {tier.name} created")
    return redirect("/admin/tiers")


async def _edit_page(request: Request, tier: Any, status: int = 200, **extra: Any
                     ) -> HTTPResponse:
    on = await request.app.ctx.db.read(tiers.tenants_on, tier.id)
    return render(request, "admin/tier_edit.html", status=status, tier=tier, fields=FIELDS,
                  tenants_on=on, **extra)


@ADMIN.get("/tiers/<tier_id:uuid>")
async def tier_edit(request: Request, tier_id: Any) -> HTTPResponse:
    tier = await request.app.ctx.db.read(tiers.get, str(tier_id))
    if tier is None:
        flash(request, "Tier not found", "error")
        return redirect("/admin/tiers")
    return await _edit_page(request, tier)


@ADMIN.post("/tiers/<tier_id:uuid>")
async def tier_update(request: Request, tier_id: Any) -> HTTPResponse:
    fields, errs, typed = _tier_form(request)
    try:
        if errs:
            raise ValidationFailed({**tier_ops.check(fields, creating=False), **errs})
        tier = await tier_ops.update(gw(request), actor(request), str(tier_id), fields)
    except NotFound:
        flash(request, "Tier not found", "error")
        return redirect("/admin/tiers")
    except ValidationFailed as exc:
        tier = await request.app.ctx.db.read(tiers.get, str(tier_id))
        if tier is None:
            flash(request, "Tier not found", "error")
            return redirect("/admin/tiers")
        return await _edit_page(request, tier, 422, errors=exc.fields, values=typed)
    flash(request, f"Tier {tier.name} saved")
    return redirect("/admin/tiers")


@ADMIN.post("/tiers/<tier_id:uuid>/delete")
async def tier_delete(request: Request, tier_id: Any) -> HTTPResponse:
    try:
        ok = await found(tier_ops.delete(gw(request), actor(request), str(tier_id)))
    except Conflict as exc:
        flash(request, f"Tier not deleted: {exc.detail}", "error")
        return redirect(f"/admin/tiers/{tier_id}")
    flash(request, "Tier deleted" if ok else "Tier not found", "ok" if ok else "error")
    return redirect("/admin/tiers")


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
