"""Roles under the management API: the built-in roles and custom roles (named sets of
permissions, ``family:action``), listed, shown, made, changed and deleted (docs/admin.md#roles).
A custom role is held by admin users and API tokens by its name, so the name does not change;
a role still held cannot be deleted."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from ... import errors
from ...auth import admin_auth
from ...domain import authz
from ...http import decode, empty, gw, json, set_fields, uuid_param
from ..schemas import RoleCreate, RolePatch

bp = Blueprint("manage_roles")


@bp.get("/roles")
async def index(request: Request) -> HTTPResponse:
    await admin_auth(request)
    roles = await gw(request).db.read(authz.all_roles)
    return json({"data": roles, "permissions": sorted(authz.PERMISSIONS), "next": None})


@bp.post("/roles")
async def create(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    body = decode(request, RoleCreate, empty_ok=False)
    role = await authz.create_role(gw(request), who.actor, name=body.name,
                                   description=body.description, permissions=body.permissions,
                                   granter=who)
    return json({"data": role}, status=201)


@bp.get("/roles/<role_id>")
async def show(request: Request, role_id: str) -> HTTPResponse:
    role_id = uuid_param(role_id)
    await admin_auth(request)

    def read(conn: Any) -> authz.RoleView | None:
        return next((r for r in authz.all_roles(conn) if r.id == role_id), None)

    role = await gw(request).db.read(read)
    if role is None:
        raise errors.not_found()
    return json({"data": role})


@bp.patch("/roles/<role_id>")
async def update(request: Request, role_id: str) -> HTTPResponse:
    role_id = uuid_param(role_id)
    who = await admin_auth(request)
    changes = set_fields(decode(request, RolePatch))
    role = await authz.update_role(gw(request), who.actor, role_id, changes, granter=who)
    return json({"data": role})


@bp.delete("/roles/<role_id>")
async def delete(request: Request, role_id: str) -> HTTPResponse:
    role_id = uuid_param(role_id)
    who = await admin_auth(request)
    await authz.delete_role(gw(request), who.actor, role_id)
    return empty(204)


def operations(op: Any, admin: tuple[str, ...]) -> list[Any]:
    """The OpenAPI operations of these routes (gateway/api/openapi.py)."""
    base = "/api/admin"
    view = authz.RoleView
    return [
        op("GET", f"{base}/roles", "List roles: the built-in ones and custom ones, and every "
           "known permission", admin, result=[view], errors=(401, 403)),
        op("POST", f"{base}/roles", "Create a custom role (a named set of permissions)", admin,
           RoleCreate, 201, view, (400, 401, 403, 422)),
        op("GET", f"{base}/roles/{{role_id}}", "Show a custom role", admin, result=view,
           errors=(400, 401, 403, 404)),
        op("PATCH", f"{base}/roles/{{role_id}}", "Change a custom role's permissions or "
           "description", admin, RolePatch, result=view, errors=(400, 401, 403, 404, 422)),
        op("DELETE", f"{base}/roles/{{role_id}}", "Delete a custom role no one holds", admin,
           ok=204, errors=(400, 401, 403, 404, 409)),
    ]
