"""Tenants: create (the API key is shown once), list, show, update, rotate key, delete."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import tenants

from ... import errors
from ...auth import admin_auth, tenant_ids
from ...domain import tenants as tenant_ops
from ...http import decode, empty, gw, int_arg, json, set_fields, uuid_param
from ..schemas import TenantCreate, TenantPatch, tenant_out

bp = Blueprint("manage_tenants")


@bp.post("/tenants")
async def create(request: Request) -> HTTPResponse:
    ctx = gw(request)
    who = await admin_auth(request)
    body = decode(request, TenantCreate, empty_ok=False)
    tenant, key = await tenant_ops.create(ctx, who.actor, name=body.name,
                                          alert_webhook_url=body.alert_webhook_url,
                                          status=body.status)
    return json({"data": tenant_out(tenant, key)}, status=201)


@bp.get("/tenants")
async def index(request: Request) -> HTTPResponse:
    ctx = gw(request)
    who = await admin_auth(request)
    limit = int_arg(request, "limit", 50)
    scope = tenant_ids(who, None)
    try:
        items, nxt = await ctx.db.read(
            lambda c: tenants.list_page(c, limit=limit, cursor=request.args.get("cursor"),
                                        status=request.args.get("status"), tenant_ids=scope)
        )
    except ValueError:
        raise errors.bad_request("invalid cursor", "invalid_cursor") from None
    return json({"data": [tenant_out(t) for t in items], "next": nxt})


@bp.get("/tenants/<tenant_id>")
async def show(request: Request, tenant_id: str) -> HTTPResponse:
    tenant_id = uuid_param(tenant_id)
    await admin_auth(request)
    tenant = await gw(request).db.read(tenants.get, tenant_id)
    if tenant is None:
        raise errors.not_found()
    return json({"data": tenant_out(tenant)})


@bp.patch("/tenants/<tenant_id>")
async def update(request: Request, tenant_id: str) -> HTTPResponse:
    ctx = gw(request)
    tenant_id = uuid_param(tenant_id)
    who = await admin_auth(request)
    body = decode(request, TenantPatch)
    changes = set_fields(body)
    tenant = await tenant_ops.update(ctx, who.actor, tenant_id, changes)
    return json({"data": tenant_out(tenant)})


@bp.post("/tenants/<tenant_id>/rotate-key")
async def rotate_key(request: Request, tenant_id: str) -> HTTPResponse:
    ctx = gw(request)
    tenant_id = uuid_param(tenant_id)
    who = await admin_auth(request)
    tenant, key = await tenant_ops.rotate_key(ctx, who.actor, tenant_id)
    return json({"data": tenant_out(tenant, key)})


@bp.delete("/tenants/<tenant_id>")
async def delete(request: Request, tenant_id: str) -> HTTPResponse:
    ctx = gw(request)
    tenant_id = uuid_param(tenant_id)
    who = await admin_auth(request)
    await tenant_ops.delete(ctx, who.actor, tenant_id)
    return empty(204)
