"""The admin panel's people and records pages: admin users (super admins manage them), tenant
users, admin API tokens and the audit log."""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from store import admin_tokens, audit, dashboard, users

from .. import domain, errors
from . import accounts, common, sessions
from .admin import actor, create_admin, super_only
from .common import arg, back, flash, form, render

bp = Blueprint("web_admin_more", url_prefix="/admin")


def _errs(exc: errors.ApiError) -> dict[str, Any]:
    return exc.legacy.get("errors", {})


# -- admin users ------------------------------------------------------------------------------
async def _users_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    items = await request.app.ctx.db.read(users.list_admins)
    return render(request, "admin/users.html", status=status, users=items, roles=users.ADMIN_ROLES,
                  **extra)


@bp.get("/users")
async def users_page(request: Request) -> HTTPResponse:
    return await _users_page(request)


@bp.post("/users")
async def user_create(request: Request) -> HTTPResponse:
    if (refused := super_only(request)) is not None:
        return refused
    try:
        await create_admin(request, form(request, "email"), form(request, "name"),
                           form(request, "password"), form(request, "role"), actor(request))
    except errors.ApiError as exc:
        values = {k: form(request, k) for k in ("email", "name", "role")}
        return await _users_page(request, 422, errors=_errs(exc), values=values)
    flash(request, "Admin user created")
    return redirect("/admin/users")


@bp.post("/users/<user_id:uuid>/status")
async def user_status(request: Request, user_id: Any) -> HTTPResponse:
    if (refused := super_only(request)) is not None:
        return refused
    new = "inactive" if form(request, "status") == "inactive" else "active"
    ctx = request.app.ctx
    return await common.change_user(
        request, user_id, "/admin/users", "status",
        lambda: ctx.db.write(accounts.update_admin_tx, str(user_id), {"status": new},
                             actor(request), ctx.now_iso()))


@bp.post("/users/<user_id:uuid>/delete")
async def user_delete(request: Request, user_id: Any) -> HTTPResponse:
    if (refused := super_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    return await common.change_user(
        request, user_id, "/admin/users", "delete",
        lambda: ctx.db.write(accounts.delete_admin_tx, str(user_id), actor(request), ctx.now_iso()))


# -- tenant users -----------------------------------------------------------------------------
async def _tenant_users_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    tenant_id = arg(request, "tenant_id")

    def read(conn: Any) -> dict[str, Any]:
        items = users.list_tenant_users(conn, tenant_id if common.is_uuid(tenant_id) else None)
        return {"tenant_users": items, "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_names": dict(dashboard.all_names(conn, "tenants"))}

    data = await request.app.ctx.db.read(read)
    return render(request, "admin/tenant_users.html", status=status, roles=users.TENANT_ROLES,
                  **data, **extra)


@bp.get("/tenant_users")
async def tenant_users_page(request: Request) -> HTTPResponse:
    return await _tenant_users_page(request)


@bp.post("/tenant_users")
async def tenant_user_create(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    password = form(request, "password")
    hashed = await asyncio.to_thread(sessions.hash_password, password) if password else ""
    try:
        await ctx.db.write(accounts.create_tenant_user_tx, form(request, "tenant_id"),
                           form(request, "email"), form(request, "name"), password, hashed,
                           form(request, "role"), actor(request), ctx.now_iso())
    except errors.ApiError as exc:
        values = {k: form(request, k) for k in ("tenant_id", "email", "name", "role")}
        return await _tenant_users_page(request, 422, errors=_errs(exc), values=values)
    flash(request, "Tenant user created")
    return back(request, "/admin/tenant_users")


@bp.post("/tenant_users/<user_id:uuid>/status")
async def tenant_user_status(request: Request, user_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    new = "inactive" if form(request, "status") == "inactive" else "active"
    ok = await ctx.db.write(accounts.update_tenant_user_tx, str(user_id), {"status": new},
                            actor(request), ctx.now_iso())
    flash(request, "Status updated" if ok else "User not found", "ok" if ok else "error")
    return back(request, "/admin/tenant_users")


@bp.post("/tenant_users/<user_id:uuid>/delete")
async def tenant_user_delete(request: Request, user_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    ok = await ctx.db.write(accounts.delete_tenant_user_tx, str(user_id), actor(request),
                            ctx.now_iso())
    flash(request, "User deleted" if ok else "User not found", "ok" if ok else "error")
    return back(request, "/admin/tenant_users")


# -- admin API tokens -------------------------------------------------------------------------
async def _tokens_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    items = await request.app.ctx.db.read(admin_tokens.list_all)
    return render(request, "admin/tokens.html", status=status, tokens=items,
                  roles=users.ADMIN_ROLES, **extra)


@bp.get("/tokens")
async def tokens_page(request: Request) -> HTTPResponse:
    return await _tokens_page(request)


@bp.post("/tokens")
async def token_create(request: Request) -> HTTPResponse:
    if (refused := super_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    try:
        row, token = await ctx.db.write(domain.create_admin_token_tx, form(request, "name"),
                                        form(request, "role"), actor(request), ctx.now_iso())
    except errors.ApiError as exc:
        return await _tokens_page(request, 422, errors=_errs(exc))
    flash(request, "Token created")
    return await _tokens_page(request, 201, shown_once={"what": f"admin API token {row.name}",
                                                        "value": token})


@bp.post("/tokens/<token_id:uuid>/revoke")
async def token_revoke(request: Request, token_id: Any) -> HTTPResponse:
    if (refused := super_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    who, now = actor(request), ctx.now_iso()

    def tx(conn: Any) -> bool:
        ok = admin_tokens.revoke(conn, str(token_id), now)
        if ok:
            audit.record(conn, actor_type=who[0], actor_id=who[1], action="revoke",
                         resource_type="admin_token", resource_id=str(token_id), now=now)
        return ok

    ok = await ctx.db.write(tx)
    flash(request, "Token revoked" if ok else "Token not found", "ok" if ok else "error")
    return redirect("/admin/tokens")


# -- audit log --------------------------------------------------------------------------------
@bp.get("/audit_logs")
async def audit_page(request: Request) -> HTTPResponse:
    tenant_id = arg(request, "tenant_id")

    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = audit.list_page(
                conn, tenant_id=tenant_id if common.is_uuid(tenant_id) else None,
                actor_type=arg(request, "actor_type"), action=arg(request, "action"),
                resource_type=arg(request, "resource_type"), limit=50,
                cursor=arg(request, "cursor"))
        except ValueError:
            items, nxt = [], None
        return {"entries": items, "next": nxt, "tenant_list": dashboard.all_names(conn, "tenants")}

    import json

    data = await request.app.ctx.db.read(read)
    return render(request, "admin/audit.html", pretty=lambda v: json.dumps(v, indent=2,
                                                                            sort_keys=True),
                  **data)
