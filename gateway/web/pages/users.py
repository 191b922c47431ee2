"""The admin's people pages: admin users (super admins manage them) and every tenant's users.
The rules (valid e-mail, roles, unique e-mail) are in ``gateway.web.accounts``; passwords are
hashed here, off the event loop, before the change is written."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import dashboard, users

from ... import errors
from ...auth import actor
from .. import accounts, kit, security
from ..kit import arg, back, flash, form, render
from . import ADMIN


async def hashed(password: str) -> str:
    """The argon2 hash of a new password ("" for none: the rules then refuse it)."""
    return await asyncio.to_thread(security.hash_password, password) if password else ""


async def create_admin(request: Request, email: str, name: str, password: str, role: str,
                       who: tuple[str, str]) -> users.AdminUser:
    return await request.app.ctx.db.write(
        accounts.create_admin_tx, email, name, password, await hashed(password), role, who,
        request.app.ctx.now_iso())


async def create_tenant_user(request: Request, tenant_id: str, role: str) -> users.TenantUser:
    ctx = request.app.ctx
    password = form(request, "password")
    return await ctx.db.write(accounts.create_tenant_user_tx, tenant_id, form(request, "email"),
                              form(request, "name"), password, await hashed(password), role,
                              actor(request), ctx.now_iso())


async def change_user(request: Request, user_id: Any, page: str, action: str,
                      write: Callable[[], Awaitable[Any]]) -> HTTPResponse:
    """A user list's status/delete button (admin and portal alike): never on one's own account;
    ``write`` applies the change and says whether the user was found."""
    if str(user_id) == request.ctx.user.id:
        verb = "deactivate" if action == "status" else "delete"
        flash(request, f"You cannot {verb} your own account.", "error")
        return redirect(page)
    ok = await write()
    done = "Status updated" if action == "status" else "User deleted"
    flash(request, done if ok else "User not found", "ok" if ok else "error")
    return redirect(page)


def new_status(request: Request) -> str:
    return "inactive" if form(request, "status") == "inactive" else "active"


# -- admin users --------------------------------------------------------------------------------
async def _users_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    items = await request.app.ctx.db.read(users.list_admins)
    return render(request, "admin/users.html", status=status, users=items, roles=users.ADMIN_ROLES,
                  **extra)


@ADMIN.get("/users")
async def users_page(request: Request) -> HTTPResponse:
    return await _users_page(request)


@ADMIN.post("/users")
async def user_create(request: Request) -> HTTPResponse:
    if (refused := kit.super_only(request)) is not None:
        return refused
    try:
        await create_admin(request, form(request, "email"), form(request, "name"),
                           form(request, "password"), form(request, "role"), actor(request))
    except errors.ApiError as exc:
        values = {k: form(request, k) for k in ("email", "name", "role")}
        return await _users_page(request, 422, errors=kit.field_errors(exc), values=values)
    flash(request, "Admin user created")
    return redirect("/admin/users")


@ADMIN.post("/users/<user_id:uuid>/status")
async def user_status(request: Request, user_id: Any) -> HTTPResponse:
    if (refused := kit.super_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    return await change_user(
        request, user_id, "/admin/users", "status",
        lambda: ctx.db.write(accounts.update_admin_tx, str(user_id), {"status": new_status(request)},
                             actor(request), ctx.now_iso()))


@ADMIN.post("/users/<user_id:uuid>/delete")
async def user_delete(request: Request, user_id: Any) -> HTTPResponse:
    if (refused := kit.super_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    return await change_user(
        request, user_id, "/admin/users", "delete",
        lambda: ctx.db.write(accounts.delete_admin_tx, str(user_id), actor(request), ctx.now_iso()))


# -- tenant users -------------------------------------------------------------------------------
async def _tenant_users_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    tenant_id = arg(request, "tenant_id")

    def read(conn: Any) -> dict[str, Any]:
        items = users.list_tenant_users(conn, tenant_id if kit.is_uuid(tenant_id) else None)
        return {"tenant_users": items, "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_names": dict(dashboard.all_names(conn, "tenants"))}

    data = await request.app.ctx.db.read(read)
    return render(request, "admin/tenant_users.html", status=status, roles=users.TENANT_ROLES,
                  **data, **extra)


@ADMIN.get("/tenant_users")
async def tenant_users_page(request: Request) -> HTTPResponse:
    return await _tenant_users_page(request)


@ADMIN.post("/tenant_users")
async def tenant_user_create(request: Request) -> HTTPResponse:
    try:
        await create_tenant_user(request, form(request, "tenant_id"), form(request, "role"))
    except errors.ApiError as exc:
        values = {k: form(request, k) for k in ("tenant_id", "email", "name", "role")}
        return await _tenant_users_page(request, 422, errors=kit.field_errors(exc), values=values)
    flash(request, "Tenant user created")
    return back(request, "/admin/tenant_users")


@ADMIN.post("/tenant_users/<user_id:uuid>/status")
async def tenant_user_status(request: Request, user_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    ok = await ctx.db.write(accounts.update_tenant_user_tx, str(user_id),
                            {"status": new_status(request)}, actor(request), ctx.now_iso())
    flash(request, "Status updated" if ok else "User not found", "ok" if ok else "error")
    return back(request, "/admin/tenant_users")


@ADMIN.post("/tenant_users/<user_id:uuid>/delete")
async def tenant_user_delete(request: Request, user_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    ok = await ctx.db.write(accounts.delete_tenant_user_tx, str(user_id), actor(request),
                            ctx.now_iso())
    flash(request, "User deleted" if ok else "User not found", "ok" if ok else "error")
    return back(request, "/admin/tenant_users")
