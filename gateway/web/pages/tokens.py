"""The admin's API tokens page: list, create (the token is shown once), revoke. Super admins
only change them."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import admin_tokens

from ...auth import actor
from ...domain import ValidationFailed, authz
from ...domain import admin_tokens as token_ops
from ...http import gw
from ..kit import flash, form, found, render
from . import ADMIN


async def _tokens_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    items, roles = await request.app.ctx.db.read(
        lambda conn: (admin_tokens.list_all(conn), authz.role_names(conn)))
    return render(request, "admin/tokens.html", status=status, tokens=items, roles=roles,
                  now=request.app.ctx.now_iso(), **extra)


@ADMIN.get("/tokens")
async def tokens_page(request: Request) -> HTTPResponse:
    return await _tokens_page(request)


@ADMIN.post("/tokens")
async def token_create(request: Request) -> HTTPResponse:
    try:
        scope = [t for t in (request.form.getlist("tenant_scope") if request.form else None)
                 or [] if t]
        row, token = await token_ops.create(
            gw(request), actor(request), name=form(request, "name"), role=form(request, "role"),
            tenant_scope=scope or None, expires_at=form(request, "expires_at") or None,
            granter=request.ctx.principal)
    except ValidationFailed as exc:
        return await _tokens_page(request, 422, errors=exc.fields)
    flash(request, "Token created")
    return await _tokens_page(request, 201, shown_once={"what": f"admin API token {row.name}",
                                                        "value": token})


@ADMIN.post("/tokens/<token_id:uuid>/revoke")
async def token_revoke(request: Request, token_id: Any) -> HTTPResponse:
    ok = await found(token_ops.revoke(gw(request), actor(request), str(token_id)))
    flash(request, "Token revoked" if ok else "Token not found", "ok" if ok else "error")
    return redirect("/admin/tokens")
