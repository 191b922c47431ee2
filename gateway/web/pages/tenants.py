"""The admin's tenants page: list, create (the API key is shown once), enable/disable, the
alert webhook, key rotation and deletion. Changes go through ``gateway.domain`` (validation,
audit) with the signed-in admin as the actor."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import tenants

from ...auth import actor
from ...domain import NotFound, ValidationFailed
from ...domain import tenants as tenant_ops
from ...http import gw
from .. import kit
from ..kit import arg, back, flash, form, found, render
from . import ADMIN


async def _tenants_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    try:
        items, nxt = await request.app.ctx.db.read(
            lambda c: tenants.list_page(c, limit=50, cursor=arg(request, "cursor"),
                                        tenant_ids=kit.tenant_ids(request)))
    except ValueError:
        items, nxt = [], None
    return render(request, "admin/tenants.html", status=status, tenants=items, next=nxt, **extra)


@ADMIN.get("/tenants")
async def tenants_page(request: Request) -> HTTPResponse:
    return await _tenants_page(request)


@ADMIN.post("/tenants")
async def tenant_create(request: Request) -> HTTPResponse:
    try:
        tenant, api_key = await tenant_ops.create(
            gw(request), actor(request), name=form(request, "name"),
            alert_webhook_url=form(request, "alert_webhook_url") or None)
    except ValidationFailed as exc:
        return await _tenants_page(request, 422, errors=exc.fields,
                                   values=dict(request.form or {}))
    flash(request, "Tenant created")
    # Rendered here, not after a redirect: the key exists only in this response.
    return await _tenants_page(request, 201, shown_once={"what": f"API key of {tenant.name}",
                                                         "value": api_key})


@ADMIN.post("/tenants/<tenant_id:uuid>/status")
async def tenant_status(request: Request, tenant_id: Any) -> HTTPResponse:
    new = "inactive" if form(request, "status") == "inactive" else "active"
    ok = await found(tenant_ops.set_status(gw(request), actor(request), str(tenant_id), new))
    flash(request, "Status updated" if ok else "Tenant not found", "ok" if ok else "error")
    return back(request, "/admin/tenants")


@ADMIN.post("/tenants/<tenant_id:uuid>/webhook")
async def tenant_webhook(request: Request, tenant_id: Any) -> HTTPResponse:
    try:
        ok = await found(tenant_ops.update(
            gw(request), actor(request), str(tenant_id),
            {"alert_webhook_url": form(request, "alert_webhook_url")}))
    except ValidationFailed as exc:
        flash(request, "Alert webhook URL: " + "; ".join(sum(exc.fields.values(), [])), "error")
        return back(request, "/admin/tenants")
    flash(request, "Alert webhook updated" if ok else "Tenant not found")
    return back(request, "/admin/tenants")


@ADMIN.post("/tenants/<tenant_id:uuid>/rotate")
async def tenant_rotate(request: Request, tenant_id: Any) -> HTTPResponse:
    try:
        result = await tenant_ops.rotate_key(gw(request), actor(request), str(tenant_id))
    except NotFound:
        flash(request, "Tenant not found", "error")
        return redirect("/admin/tenants")
    flash(request, "API key rotated: the old key no longer works")
    return await _tenants_page(request, shown_once={"what": f"new API key of {result[0].name}",
                                                    "value": result[1]})


@ADMIN.post("/tenants/<tenant_id:uuid>/delete")
async def tenant_delete(request: Request, tenant_id: Any) -> HTTPResponse:
    if form(request, "confirm") != "yes":
        flash(request, "Deletion not confirmed", "error")
        return redirect("/admin/tenants")
    ok = await found(tenant_ops.delete(gw(request), actor(request), str(tenant_id)))
    flash(request, "Tenant deleted" if ok else "Tenant not found", "ok" if ok else "error")
    return redirect("/admin/tenants")
