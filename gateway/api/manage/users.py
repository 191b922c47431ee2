"""The people who sign in to the pages, over the management API: admin users (the ``admins``
permission: only super_admin among the built-in roles changes them, as on the pages) and tenant
users (``users``).
The rules and the password hashing are the domain's (gateway/domain/users.py)."""

from __future__ import annotations

from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import users

from ... import errors
from ...auth import admin_auth, authorize_body_tenant, tenant_ids
from ...domain import users as user_ops
from ...http import decode, empty, gw, json, set_fields, uuid_param
from ..schemas import AdminUserCreate, AdminUserPatch, TenantUserCreate, UserPatch

bp = Blueprint("manage_users")


def _view(user: Any) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(user)
    return out


# -- admin users ------------------------------------------------------------------------------
@bp.get("/users")
async def list_admins(request: Request) -> HTTPResponse:
    await admin_auth(request)
    rows = await gw(request).db.read(users.list_admins)
    return json({"data": [_view(u) for u in rows], "next": None})


@bp.post("/users")
async def create_admin(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    body = decode(request, AdminUserCreate, empty_ok=False)
    user = await user_ops.create_admin(gw(request), who.actor, email=body.email, name=body.name,
                                       password=body.password, role=body.role,
                                       tenant_scope=body.tenant_scope, granter=who)
    return json({"data": _view(user)}, status=201)


@bp.get("/users/<user_id>")
async def show_admin(request: Request, user_id: str) -> HTTPResponse:
    user_id = uuid_param(user_id)
    await admin_auth(request)
    user = await gw(request).db.read(users.get_admin, user_id)
    if user is None:
        raise errors.not_found()
    return json({"data": _view(user)})


@bp.patch("/users/<user_id>")
async def update_admin(request: Request, user_id: str) -> HTTPResponse:
    user_id = uuid_param(user_id)
    who = await admin_auth(request)
    changes = set_fields(decode(request, AdminUserPatch))
    user = await user_ops.update_admin(gw(request), who.actor, user_id, changes, granter=who)
    return json({"data": _view(user)})


@bp.delete("/users/<user_id>")
async def delete_admin(request: Request, user_id: str) -> HTTPResponse:
    user_id = uuid_param(user_id)
    who = await admin_auth(request)
    await user_ops.delete_admin(gw(request), who.actor, user_id)
    return empty(204)


# -- tenant users -----------------------------------------------------------------------------
@bp.get("/tenant_users")
async def list_tenant_users(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    tenant_id = request.args.get("tenant_id")
    if tenant_id:
        uuid_param(tenant_id, "tenant_id")
    rows = await gw(request).db.read(users.list_tenant_users, tenant_id or None,
                                     tenant_ids(who, tenant_id or None))
    return json({"data": [_view(u) for u in rows], "next": None})


@bp.post("/tenant_users")
async def create_tenant_user(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    body = decode(request, TenantUserCreate, empty_ok=False)
    tenant_id = uuid_param(body.tenant_id, "tenant_id")
    await authorize_body_tenant(request, who, tenant_id, "users:write")
    user = await user_ops.create_tenant_user(
        gw(request), who.actor, tenant_id=tenant_id, email=body.email, name=body.name,
        password=body.password, role=body.role)
    return json({"data": _view(user)}, status=201)


@bp.patch("/tenant_users/<user_id>")
async def update_tenant_user(request: Request, user_id: str) -> HTTPResponse:
    user_id = uuid_param(user_id)
    who = await admin_auth(request)
    changes = set_fields(decode(request, UserPatch))
    user = await user_ops.update_tenant_user(gw(request), who.actor, user_id, changes)
    return json({"data": _view(user)})


@bp.delete("/tenant_users/<user_id>")
async def delete_tenant_user(request: Request, user_id: str) -> HTTPResponse:
    user_id = uuid_param(user_id)
    who = await admin_auth(request)
    await user_ops.delete_tenant_user(gw(request), who.actor, user_id)
    return empty(204)
