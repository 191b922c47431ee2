"""The tenant portal (reference §15.2): a tenant's own users sign in with tenant name, e-mail and
password and see only their tenant. Roles: owner and admin manage users; owner, admin and
member may enable/disable channels and rules and retry deliveries; viewer only reads."""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect, text

import adapters
from store import channels, dashboard, tenants, users

from .. import domain, errors
from . import accounts, common, sessions
from .common import flash, form, render

bp = Blueprint("web_portal", url_prefix="/portal")
MANAGERS = ("owner", "admin")


def actor(request: Request) -> tuple[str, str]:
    return ("tenant_user", request.ctx.user.email)


async def guard(request: Request) -> HTTPResponse | None:
    sess = common.open_session(request, "portal")
    if (refused := common.check_csrf(request)) is not None:
        return refused
    request.ctx.user = None
    request.ctx.tenant = None
    uid = sess.get("uid")
    if uid:
        def read(conn: Any) -> tuple[Any, Any]:
            user = users.get_tenant_user(conn, uid)
            return user, tenants.get(conn, user.tenant_id) if user else None

        user, tenant = await request.app.ctx.db.read(read)
        if user and user.status == "active" and tenant and tenant.status == "active":
            request.ctx.user, request.ctx.tenant = user, tenant
        else:
            common.replace_session(request, {})
    if request.path == "/portal/login":
        return None
    if request.ctx.user is None:
        flash(request, "You must log in to access this page.", "error")
        return redirect("/portal/login")
    if (request.method == "POST" and request.ctx.user.role == "viewer"
            and request.path != "/portal/logout"):
        return text("Forbidden: viewers cannot change anything", status=403)
    return None


@bp.get("/login")
async def login_page(request: Request) -> HTTPResponse:
    if request.ctx.user is not None:
        return redirect("/portal")
    return render(request, "portal/login.html")


@bp.post("/login")
async def login(request: Request) -> HTTPResponse:
    web = common.state(request)
    tenant_name, email = form(request, "tenant"), form(request, "email").lower()
    password = form(request, "password")
    ip = sessions.client_ip(request, web.proxies)
    key = f"{tenant_name}\x00{email}"
    values = {"tenant": tenant_name, "email": email}
    if web.limiter.blocked(ip, key):
        flash(request, "Too many failed attempts. Try again in a few minutes.", "error")
        return render(request, "portal/login.html", status=429, values=values)

    def read(conn: Any) -> Any:
        found = [t for t in tenants.by_name(conn, tenant_name) if t.status == "active"]
        return users.tenant_login_row(conn, found[0].id, email) if found else None

    found = await request.app.ctx.db.read(read)
    return await common.finish_login(request, found, password, ip=ip, key=key,
                                     template="portal/login.html", home="/portal",
                                     bad="Invalid tenant, email, or password.", values=values)


@bp.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    common.replace_session(request, {})
    flash(request, "Logged out successfully.")
    return redirect("/portal/login")


@bp.get("")
async def dashboard_page(request: Request) -> HTTPResponse:
    tenant_id = request.ctx.user.tenant_id

    def read(conn: Any) -> dict[str, Any]:
        external = [c for c in channels.for_tenant(conn, tenant_id)
                    if c.status == "active" and c.type in adapters.DELIVERING_TYPES]
        return {"counts": dashboard.counts(conn, tenant_id), "external": external,
                "health": dashboard.latest_health(conn, tenant_id)}

    return render(request, "portal/dashboard.html", tenant=request.ctx.tenant,
                  **await request.app.ctx.db.read(read))


@bp.get("/channels")
async def channels_page(request: Request) -> HTTPResponse:
    tenant_id = request.ctx.user.tenant_id

    def read(conn: Any) -> dict[str, Any]:
        return {"channels": channels.for_tenant(conn, tenant_id),
                "health": dashboard.latest_health(conn, tenant_id)}

    return render(request, "portal/channels.html", **await request.app.ctx.db.read(read))


@bp.post("/channels/<channel_id:uuid>/status")
async def channel_status(request: Request, channel_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    tenant_id = request.ctx.user.tenant_id
    new = "inactive" if form(request, "status") == "inactive" else "active"

    def tx(conn: Any) -> Any:
        if channels.get_for_tenant(conn, tenant_id, str(channel_id)) is None:
            return None
        return domain.update_channel_tx(conn, ctx.cipher, str(channel_id), {"status": new},
                                        actor(request), ctx.now_iso())

    ok = await ctx.db.write(tx)
    flash(request, "Status updated" if ok else "Channel not found", "ok" if ok else "error")
    return redirect("/portal/channels")


# -- users (owner/admin) ----------------------------------------------------------------------
def _managers_only(request: Request) -> HTTPResponse | None:
    if request.ctx.user.role not in MANAGERS:
        return text("Forbidden: only owners and admins manage users", status=403)
    return None


async def _users_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    items = await request.app.ctx.db.read(users.list_tenant_users, request.ctx.user.tenant_id)
    return render(request, "portal/users.html", status=status, users=items,
                  roles=("admin", "member", "viewer"), can_manage=request.ctx.user.role in MANAGERS,
                  **extra)


@bp.get("/users")
async def users_page(request: Request) -> HTTPResponse:
    return await _users_page(request)


@bp.post("/users")
async def user_create(request: Request) -> HTTPResponse:
    if (refused := _managers_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    role = form(request, "role")
    if role == "owner":  # owners are made by an admin of the gateway, not from the portal
        role = "invalid"
    password = form(request, "password")
    hashed = await asyncio.to_thread(sessions.hash_password, password) if password else ""
    try:
        await ctx.db.write(accounts.create_tenant_user_tx, request.ctx.user.tenant_id,
                           form(request, "email"), form(request, "name"), password, hashed, role,
                           actor(request), ctx.now_iso())
    except errors.ApiError as exc:
        values = {k: form(request, k) for k in ("email", "name", "role")}
        return await _users_page(request, 422, errors=exc.legacy.get("errors", {}), values=values)
    flash(request, "User created")
    return redirect("/portal/users")


@bp.post("/users/<user_id:uuid>/status")
async def user_status(request: Request, user_id: Any) -> HTTPResponse:
    if (refused := _managers_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    new = "inactive" if form(request, "status") == "inactive" else "active"
    return await common.change_user(
        request, user_id, "/portal/users", "status",
        lambda: ctx.db.write(accounts.update_tenant_user_tx, str(user_id), {"status": new},
                             actor(request), ctx.now_iso(), request.ctx.user.tenant_id))


@bp.post("/users/<user_id:uuid>/delete")
async def user_delete(request: Request, user_id: Any) -> HTTPResponse:
    if (refused := _managers_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    return await common.change_user(
        request, user_id, "/portal/users", "delete",
        lambda: ctx.db.write(accounts.delete_tenant_user_tx, str(user_id), actor(request),
                             ctx.now_iso(), request.ctx.user.tenant_id))
