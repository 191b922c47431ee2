"""Routing rules: the list and the enable/disable button in both areas (the portal's limited to
its tenant); creating and deleting a rule in the admin area. The rules of a rule (its channels
exist, belong to its tenant, form no cycle) are in ``gateway.domain``."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import channels, dashboard, routing

from ...auth import actor
from ...domain import ValidationFailed
from ...domain import routing as rule_ops
from ...http import gw
from .. import kit
from ..kit import back, flash, form, found, render
from . import ADMIN, both


def _no_source(chans: list[Any], tenant_list: list[tuple[str, str]]) -> dict[str, list[Any]]:
    """Tenants none of whose channels can be a rule's source (none takes messages in), with
    their channels (the form says why the source list is empty)."""
    out: dict[str, list[Any]] = {}
    for tenant_id, _name in tenant_list:
        own = [c for c in chans if c.tenant_id == tenant_id]
        if not any(c.mode in ("inbound", "duplex") for c in own):
            out[tenant_id] = own
    return out


@both("/routing_rules", "rules")
async def rules_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    tenant_id = kit.scope(request)

    def read(conn: Any) -> dict[str, Any]:
        rules = routing.list_all(conn, tenant_id)
        chans = (channels.for_tenant(conn, tenant_id) if tenant_id
                 else channels.list_page(conn, limit=500)[0])
        return {"rules": rules, "channels": chans, "channel_names": {c.id: c.name for c in chans},
                "no_source": _no_source(chans, dashboard.all_names(conn, "tenants")),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_names": dict(dashboard.all_names(conn, "tenants"))}

    return render(request, "routing_rules.html", status=status,
                  **await request.app.ctx.db.read(read), **extra)


@both("/routing_rules/<rule_id:uuid>/toggle", "rule_toggle", ("POST",))
async def rule_toggle(request: Request, rule_id: Any) -> HTTPResponse:
    try:
        ok = await found(rule_ops.toggle(gw(request), actor(request), str(rule_id),
                                         tenant_id=kit.own_tenant(request)))
    except ValidationFailed as exc:  # enabling can close a cycle
        flash(request, "Cannot enable: " + "; ".join(
            m for msgs in exc.fields.values() for m in msgs), "error")
        return back(request, f"/{request.ctx.area}/routing_rules")
    flash(request, "Rule toggled" if ok else "Rule not found", "ok" if ok else "error")
    return back(request, f"/{request.ctx.area}/routing_rules")


@ADMIN.post("/routing_rules", name="admin_rule_create")
async def rule_create(request: Request) -> HTTPResponse:
    tenant_id = await kit.form_tenant(request, "routing_rules:write")
    targets = [t for t in (request.form.getlist("target_channel_ids") if request.form else None)
               or [] if t]
    name, source = form(request, "name"), form(request, "source_channel_id")
    values = {"tenant_id": tenant_id, "name": name, "source_channel_id": source,
              "targets": targets}
    if not kit.is_uuid(tenant_id):
        return await rules_page(request, 422, errors={"tenant_id": ["choose a tenant"]},
                                values=values)
    fields = rule_ops.RuleFields(name=name, source_channel_id=source, target_channel_ids=targets,
                                 enabled=True)
    try:
        await rule_ops.create(gw(request), actor(request), tenant_id, fields)
    except ValidationFailed as exc:
        return await rules_page(request, 422, errors=exc.fields, values=values)
    flash(request, "Routing rule created")
    return redirect("/admin/routing_rules")


@ADMIN.post("/routing_rules/<rule_id:uuid>/delete", name="admin_rule_delete")
async def rule_delete(request: Request, rule_id: Any) -> HTTPResponse:
    ok = await found(rule_ops.delete(gw(request), actor(request), str(rule_id)))
    flash(request, "Rule deleted" if ok else "Rule not found", "ok" if ok else "error")
    return redirect("/admin/routing_rules")
