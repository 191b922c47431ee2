"""The admin's roles page: the built-in roles and custom ones (named sets of permissions), made,
changed and deleted by whoever holds the ``roles`` permissions (super admins among the built-in
roles). The rules are ``gateway.domain.authz``'s."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from ...auth import actor
from ...domain import Conflict, ValidationFailed, authz
from ...http import gw
from ..kit import flash, form, found, render
from . import ADMIN


def _checked(request: Request) -> list[str]:
    return [p for p in (request.form.getlist("permissions") if request.form else None) or [] if p]


async def _roles_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    roles = await request.app.ctx.db.read(authz.all_roles)
    return render(request, "admin/roles.html", status=status, roles=roles,
                  families=authz.FAMILIES, **extra)


@ADMIN.get("/roles")
async def roles_page(request: Request) -> HTTPResponse:
    return await _roles_page(request)


@ADMIN.post("/roles")
async def role_create(request: Request) -> HTTPResponse:
    try:
        await authz.create_role(gw(request), actor(request), name=form(request, "name"),
                                description=form(request, "description"),
                                permissions=_checked(request), granter=request.ctx.principal)
    except ValidationFailed as exc:
        values = {"name": form(request, "name"), "description": form(request, "description"),
                  "permissions": _checked(request)}
        return await _roles_page(request, 422, errors=exc.fields, values=values)
    flash(request, "Role created")
    return redirect("/admin/roles")


@ADMIN.post("/roles/<role_id:uuid>")
async def role_update(request: Request, role_id: Any) -> HTTPResponse:
    try:
        ok = await found(authz.update_role(
            gw(request), actor(request), str(role_id),
            {"permissions": _checked(request), "description": form(request, "description")},
            granter=request.ctx.principal))
    except ValidationFailed as exc:
        flash(request, "Role not changed: " + "; ".join(exc.messages()), "error")
        return redirect("/admin/roles")
    flash(request, "Role updated" if ok else "Role not found", "ok" if ok else "error")
    return redirect("/admin/roles")


@ADMIN.post("/roles/<role_id:uuid>/delete")
async def role_delete(request: Request, role_id: Any) -> HTTPResponse:
    try:
        ok = await found(authz.delete_role(gw(request), actor(request), str(role_id)))
    except Conflict as exc:
        flash(request, exc.detail, "error")
        return redirect("/admin/roles")
    flash(request, "Role deleted" if ok else "Role not found", "ok" if ok else "error")
    return redirect("/admin/roles")
