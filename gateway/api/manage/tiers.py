"""SLA tiers under the management API: list, create, show, update, delete a tier; show and set a
tenant's tier (``{"tier": "<name>"}``, ``null`` for none). docs/admin.md#sla-tiers."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, Struct, UnsetType
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import tenants
from store import tiers as store_tiers
from store.tiers import Tier

from ... import errors
from ...auth import admin_auth
from ...domain import tiers as tier_ops
from ...http import decode, empty, gw, json, set_fields, uuid_param

bp = Blueprint("manage_tiers")


class TierCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    priority: int = 0
    activities_per_min: int | None = None
    deliveries_per_min: int | None = None
    max_connections: int | None = None
    max_upload_bytes: int | None = None
    retention_days: int | None = None
    max_channels: int | None = None
    target_success_rate: float | None = None
    target_sent_p90_ms: int | None = None


class TierPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    activities_per_min: int | None | UnsetType = UNSET
    deliveries_per_min: int | None | UnsetType = UNSET
    max_connections: int | None | UnsetType = UNSET
    max_upload_bytes: int | None | UnsetType = UNSET
    retention_days: int | None | UnsetType = UNSET
    max_channels: int | None | UnsetType = UNSET
    target_success_rate: float | None | UnsetType = UNSET
    target_sent_p90_ms: int | None | UnsetType = UNSET


class TenantTierIn(Struct, kw_only=True, forbid_unknown_fields=True):
    tier: str | None


class TenantTierOut(Struct, kw_only=True):
    tenant_id: str
    tier: Tier | None


def _fields(body: Struct) -> dict[str, Any]:
    return {f: getattr(body, f) for f in body.__struct_fields__}


@bp.get("/tiers")
async def index(request: Request) -> HTTPResponse:
    await admin_auth(request)
    return json({"data": await gw(request).db.read(store_tiers.list_all)})


@bp.post("/tiers")
async def create(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    body = decode(request, TierCreate, empty_ok=False)
    return json({"data": await tier_ops.create(gw(request), who.actor, _fields(body))}, status=201)


@bp.get("/tiers/<tier_id>")
async def show(request: Request, tier_id: str) -> HTTPResponse:
    tier_id = uuid_param(tier_id)
    await admin_auth(request)
    tier = await gw(request).db.read(store_tiers.get, tier_id)
    if tier is None:
        raise errors.not_found()
    return json({"data": tier})


@bp.patch("/tiers/<tier_id>")
async def update(request: Request, tier_id: str) -> HTTPResponse:
    tier_id = uuid_param(tier_id)
    who = await admin_auth(request)
    changes = set_fields(decode(request, TierPatch))
    return json({"data": await tier_ops.update(gw(request), who.actor, tier_id, changes)})


@bp.delete("/tiers/<tier_id>")
async def delete(request: Request, tier_id: str) -> HTTPResponse:
    tier_id = uuid_param(tier_id)
    who = await admin_auth(request)
    await tier_ops.delete(gw(request), who.actor, tier_id)
    return empty(204)


@bp.get("/tenants/<tenant_id>/tier")
async def tenant_tier(request: Request, tenant_id: str) -> HTTPResponse:
    tenant_id = uuid_param(tenant_id)
    await admin_auth(request)
    def read(conn: Any) -> Tier | None:
        if tenants.get(conn, tenant_id) is None:
            raise errors.not_found()
        return store_tiers.of_tenant(conn, tenant_id)

    tier = await gw(request).db.read(read)
    return json({"data": TenantTierOut(tenant_id=tenant_id, tier=tier)})


@bp.put("/tenants/<tenant_id>/tier")
async def set_tenant_tier(request: Request, tenant_id: str) -> HTTPResponse:
    tenant_id = uuid_param(tenant_id)
    who = await admin_auth(request)
    body = decode(request, TenantTierIn, empty_ok=False)
    tier = await tier_ops.assign(gw(request), who.actor, tenant_id, body.tier)
    return json({"data": TenantTierOut(tenant_id=tenant_id, tier=tier)})


def operations(op: Any, admin: tuple[str, ...]) -> list[Any]:
    """The OpenAPI operations of these routes (gateway/api/openapi.py)."""
    base = "/api/admin"
    return [
        op("GET", f"{base}/tiers", "List SLA tiers", admin, result=[Tier], errors=(401,)),
        op("POST", f"{base}/tiers", "Create an SLA tier", admin, TierCreate, 201, Tier,
           (400, 401, 403, 422)),
        op("GET", f"{base}/tiers/{{tier_id}}", "Show an SLA tier", admin, result=Tier),
        op("PATCH", f"{base}/tiers/{{tier_id}}", "Update an SLA tier", admin, TierPatch,
           result=Tier, errors=(400, 401, 403, 404, 422)),
        op("DELETE", f"{base}/tiers/{{tier_id}}", "Delete an SLA tier no tenant is on", admin,
           ok=204, errors=(400, 401, 403, 404, 409)),
        op("GET", f"{base}/tenants/{{tenant_id}}/tier", "Show a tenant's SLA tier", admin,
           result=TenantTierOut),
        op("PUT", f"{base}/tenants/{{tenant_id}}/tier", "Put a tenant on an SLA tier (null: none)",
           admin, TenantTierIn, result=TenantTierOut, errors=(400, 401, 403, 404, 422)),
    ]
