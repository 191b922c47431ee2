"""The admin's people pages: admin users (super admins manage them) and every tenant's users.
The rules (valid e-mail, roles, unique e-mail, password length) and the hashing of passwords
are in ``gateway.domain.users``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import dashboard, users

from ...auth import actor
from ...domain import Actor, ValidationFailed, authz
from ...domain import invites as invite_ops
from ...domain import users as user_ops
from ...http import gw
from .. import kit
from ..kit import arg, back, flash, form, found, render
from . import ADMIN, invites


async def create_admin(request: Request, email: str, name: str, password: str, role: str,
                       who: Actor) -> users.AdminUser:
    return await user_ops.create_admin(gw(request), who, email=email, name=name,
                                       password=password, role=role)


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
    items, roles = await request.app.ctx.db.read(
        lambda conn: (users.list_admins(conn), authz.role_names(conn)))
    return render(request, "admin/users.html", status=status, users=items, roles=roles, **extra)


@ADMIN.get("/users")
async def users_page(request: Request) -> HTTPResponse:
    return await _users_page(request)


@ADMIN.post("/users")
async def user_create(request: Request) -> HTTPResponse:
    try:
        await create_admin(request, form(request, "email"), form(request, "name"),
                           form(request, "password"), form(request, "role"), actor(request))
    except ValidationFailed as exc:
        values = {k: form(request, k) for k in ("email", "name", "role")}
        return await _users_page(request, 422, errors=exc.fields, values=values)
    flash(request, "Admin user created")
    return redirect("/admin/users")


@ADMIN.post("/users/<user_id:uuid>/status")
async def user_status(request: Request, user_id: Any) -> HTTPResponse:
    return await change_user(
        request, user_id, "/admin/users", "status",
        lambda: found(user_ops.update_admin(gw(request), actor(request), str(user_id),
                                            {"status": new_status(request)})))


@ADMIN.post("/users/<user_id:uuid>/delete")
async def user_delete(request: Request, user_id: Any) -> HTTPResponse:
    return await change_user(
        request, user_id, "/admin/users", "delete",
        lambda: found(user_ops.delete_admin(gw(request), actor(request), str(user_id))))


# -- tenant users -------------------------------------------------------------------------------
async def _tenant_users_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    tenant_id = arg(request, "tenant_id")
    scope = tenant_id if kit.is_uuid(tenant_id) else None
    now = request.app.ctx.now_iso()

    def read(conn: Any) -> dict[str, Any]:
        return {"tenant_users": users.list_tenant_users(conn, scope, kit.tenant_ids(request)),
                "invites": invite_ops.pending(conn, scope, now),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_names": dict(dashboard.all_names(conn, "tenants"))}

    data = await request.app.ctx.db.read(read)
    return render(request, "admin/tenant_users.html", status=status, roles=users.TENANT_ROLES,
                  **data, **extra)


@ADMIN.get("/tenant_users")
async def tenant_users_page(request: Request) -> HTTPResponse:
    return await _tenant_users_page(request)


@ADMIN.post("/tenant_users/invites")
async def tenant_user_invite(request: Request) -> HTTPResponse:
    """An invitation by link: the person chooses their own password (no admin-set ones)."""
    try:
        invite, token = await invites.make(request, await kit.form_tenant(request, "users:write"),
                                            users.TENANT_ROLES)
    except ValidationFailed as exc:
        values = {k: form(request, k) for k in ("tenant_id", "email", "role")}
        return await _tenant_users_page(request, 422, errors=exc.fields, values=values)
    flash(request, f"Invitation made for {invite.email}: send them the link")
    return await _tenant_users_page(request, 201,
                                    shown_once=invites.shown_once(request, invite.email, token))


@ADMIN.post("/tenant_users/<user_id:uuid>/status")
async def tenant_user_status(request: Request, user_id: Any) -> HTTPResponse:
    ok = await found(user_ops.update_tenant_user(gw(request), actor(request), str(user_id),
                                                 {"status": new_status(request)}))
    flash(request, "Status updated" if ok else "User not found", "ok" if ok else "error")
    return back(request, "/admin/tenant_users")


@ADMIN.post("/tenant_users/<user_id:uuid>/delete")
async def tenant_user_delete(request: Request, user_id: Any) -> HTTPResponse:
    ok = await found(user_ops.delete_tenant_user(gw(request), actor(request), str(user_id)))
    flash(request, "User deleted" if ok else "User not found", "ok" if ok else "error")
    return back(request, "/admin/tenant_users")


# -- passwords: one's own (knowing the current one), anyone's by a super admin -----------------
@ADMIN.get("/account")
async def account_page(request: Request) -> HTTPResponse:
    return render(request, "admin/account.html")


@ADMIN.post("/account/password")
async def account_password(request: Request) -> HTTPResponse:
    me = request.ctx.user
    row = await request.app.ctx.db.read(users.admin_login_row, me.email)
    ok = await kit.state(request).passwords.verify(row[1] if row else None,
                                                   form(request, "current_password"))
    if ok is None:
        flash(request, "Too many password checks at once. Try again in a moment.", "error")
        return render(request, "admin/account.html", status=503)
    if not ok:
        return render(request, "admin/account.html", status=422,
                      errors={"current_password": ["is not your current password"]})
    new = form(request, "new_password")
    if new != form(request, "confirm_password"):
        return render(request, "admin/account.html", status=422,
                      errors={"confirm_password": ["does not match the new password"]})
    try:
        await user_ops.update_admin(gw(request), actor(request), me.id, {"password": new})
    except ValidationFailed as exc:
        return render(request, "admin/account.html", status=422,
                      errors={"new_password": exc.fields.get("password", ["is invalid"])})
    flash(request, "Password changed")
    return redirect("/admin/account")


@ADMIN.post("/users/<user_id:uuid>/password")
async def user_password(request: Request, user_id: Any) -> HTTPResponse:
    """A super admin sets another admin's password (they sign in with it and change it)."""
    try:
        ok = await found(user_ops.update_admin(gw(request), actor(request), str(user_id),
                                               {"password": form(request, "password")}))
    except ValidationFailed as exc:
        flash(request, "Password not reset: " + "; ".join(exc.fields.get("password", [])),
              "error")
        return redirect("/admin/users")
    flash(request, "Password reset" if ok else "User not found", "ok" if ok else "error")
    return redirect("/admin/users")
