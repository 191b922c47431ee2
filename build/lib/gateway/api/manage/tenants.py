"""Tenants: create (the API key is shown once), list, show, update, rotate key, delete."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import tenants

from ... import domain, errors
from ...auth import admin_auth
from ...http import decode, empty, int_arg, json, set_fields, uuid_param
from ..schemas import TenantCreate, TenantPatch, tenant_out

bp = Blueprint("manage_tenants")


def _actor(p) -> tuple[str, str]:
    return (p.actor_type, p.actor_id)


@bp.post("/tenants")
async def create(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    who = await admin_auth(request, write=True)
    body = decode(request, TenantCreate, empty_ok=False)
    tenant, key = await ctx.db.write(
        domain.create_tenant_tx, body.name, body.alert_webhook_url, body.status, _actor(who),
        ctx.now_iso(),
    )
    return json({"data": tenant_out(tenant, key)}, status=201)


@bp.get("/tenants")
async def index(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    await admin_auth(request)
    limit = int_arg(request, "limit", 50)
    try:
        items, nxt = await ctx.db.read(
            lambda c: tenants.list_page(c, limit=limit, cursor=request.args.get("cursor"),
                                        status=request.args.get("status"))
        )
    except ValueError:
        raise errors.bad_request("invalid cursor", "invalid_cursor") from None
    return json({"data": [tenant_out(t) for t in items], "next": nxt})


@bp.get("/tenants/<tenant_id>")
async def show(request: Request, tenant_id: str) -> HTTPResponse:
    tenant_id = uuid_param(tenant_id)
    await admin_auth(request)
    tenant = await request.app.ctx.db.read(tenants.get, tenant_id)
    if tenant is None:
        raise errors.not_found()
    return json({"data": tenant_out(tenant)})


@bp.patch("/tenants/<tenant_id>")
async def update(request: Request, tenant_id: str) -> HTTPResponse:
    ctx = request.app.ctx
    tenant_id = uuid_param(tenant_id)
    who = await admin_auth(request, write=True)
    body = decode(request, TenantPatch)
    changes = set_fields(body)
    tenant = await ctx.db.write(domain.update_tenant_tx, tenant_id, changes, _actor(who), ctx.now_iso())
    if tenant is None:
        raise errors.not_found()
    ctx.tenant_cache.clear()
    return json({"data": tenant_out(tenant)})


@bp.post("/tenants/<tenant_id>/rotate-key")
async def rotate_key(request: Request, tenant_id: str) -> HTTPResponse:
    ctx = request.app.ctx
    tenant_id = uuid_param(tenant_id)
    who = await admin_auth(request, write=True)
    result = await ctx.db.write(domain.rotate_tenant_key_tx, tenant_id, _actor(who), ctx.now_iso())
    if result is None:
        raise errors.not_found()
    ctx.tenant_cache.clear()
    tenant, key = result
    return json({"data": tenant_out(tenant, key)})


@bp.delete("/tenants/<tenant_id>")
async def delete(request: Request, tenant_id: str) -> HTTPResponse:
    ctx = request.app.ctx
    tenant_id = uuid_param(tenant_id)
    who = await admin_auth(request, write=True)
    if not await ctx.db.write(domain.delete_tenant_tx, tenant_id, _actor(who), ctx.now_iso()):
        raise errors.not_found()
    ctx.tenant_cache.clear()
    return empty(204)
