"""The admin's API tokens page: list, create (the token is shown once), revoke. Super admins
only change them."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import admin_tokens, users

from ... import domain, errors
from ...auth import actor
from .. import kit
from ..kit import flash, form, render
from . import ADMIN


async def _tokens_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    items = await request.app.ctx.db.read(admin_tokens.list_all)
    return render(request, "admin/tokens.html", status=status, tokens=items,
                  roles=users.ADMIN_ROLES, **extra)


@ADMIN.get("/tokens")
async def tokens_page(request: Request) -> HTTPResponse:
    return await _tokens_page(request)


@ADMIN.post("/tokens")
async def token_create(request: Request) -> HTTPResponse:
    if (refused := kit.super_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    try:
        row, token = await ctx.db.write(domain.create_admin_token_tx, form(request, "name"),
                                        form(request, "role"), actor(request), ctx.now_iso())
    except errors.ApiError as exc:
        return await _tokens_page(request, 422, errors=kit.field_errors(exc))
    flash(request, "Token created")
    return await _tokens_page(request, 201, shown_once={"what": f"admin API token {row.name}",
                                                        "value": token})


@ADMIN.post("/tokens/<token_id:uuid>/revoke")
async def token_revoke(request: Request, token_id: Any) -> HTTPResponse:
    if (refused := kit.super_only(request)) is not None:
        return refused
    ctx = request.app.ctx
    ok = await ctx.db.write(domain.revoke_admin_token_tx, str(token_id), actor(request),
                            ctx.now_iso())
    flash(request, "Token revoked" if ok else "Token not found", "ok" if ok else "error")
    return redirect("/admin/tokens")
