"""Tenant users are invited by link, never given a password by someone else (issue 23): the
admin's Tenant users page and the portal's Users page (owners and admins) make an invitation
(an e-mail and a role) and show its link once; the pending ones can be revoked. The link's page
(``/portal/invite/<token>``, no session needed) lets the invited person choose their name and
password, signs them in, and is dead afterwards. Rules in ``gateway.domain.invites``."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

from store import tenants

from ... import channel_actions
from ...auth import actor
from ...domain import NotFound, ValidationFailed
from ...domain import invites as invite_ops
from ...http import gw
from ..kit import back, flash, form, found, render
from . import ADMIN, PORTAL
from .signin import sign_in

DEAD = "This invitation link is not valid: it has expired or has been used. Ask for a new one."


def link(request: Request, token: str) -> str:
    return f"{channel_actions.public_base(request)}/portal/invite/{token}"


def shown_once(request: Request, email: str, token: str) -> dict[str, str]:
    return {"what": f"invitation link for {email} (valid {invite_ops.INVITE_DAYS} days, once)",
            "value": link(request, token)}


async def make(request: Request, tenant_id: str, roles: tuple[str, ...]) -> tuple[Any, str]:
    """An invitation from the posted form (e-mail, role) into ``tenant_id``."""
    return await invite_ops.invite(gw(request), actor(request), tenant_id=tenant_id,
                                   email=form(request, "email"), role=form(request, "role"),
                                   roles=roles)


async def revoke(request: Request, invite_id: str, tenant_id: str | None, page: str) -> HTTPResponse:
    ok = await found(invite_ops.revoke(gw(request), actor(request), invite_id,
                                       tenant_id=tenant_id))
    flash(request, "Invitation revoked" if ok else "Invitation not found", "ok" if ok else "error")
    return back(request, page)


@ADMIN.post("/tenant_users/invites/<invite_id:uuid>/revoke")
async def admin_revoke(request: Request, invite_id: Any) -> HTTPResponse:
    return await revoke(request, str(invite_id), None, "/admin/tenant_users")


# -- the link's page --------------------------------------------------------------------------
async def _invite_page(request: Request, token: str, status: int = 200,
                       **extra: Any) -> HTTPResponse:
    ctx = request.app.ctx

    def read(conn: Any) -> tuple[Any, Any] | None:
        invite = invite_ops.valid(conn, token, ctx.now_iso())
        return (invite, tenants.get(conn, invite.tenant_id)) if invite else None

    found_ = await ctx.db.read(read)
    if found_ is None:
        return render(request, "portal/invite.html", status=404, dead=DEAD)
    invite, tenant = found_
    return render(request, "portal/invite.html", status=status, invite=invite, tenant=tenant,
                  token=token, **extra)


@PORTAL.get("/invite/<token>")
async def invite_page(request: Request, token: str) -> HTTPResponse:
    return await _invite_page(request, token)


@PORTAL.post("/invite/<token>")
async def invite_accept(request: Request, token: str) -> HTTPResponse:
    password = form(request, "password")
    if password != form(request, "confirm_password"):
        return await _invite_page(request, token, 422, name=form(request, "name"), errors={
            "confirm_password": ["does not match the password"]})
    try:
        user = await invite_ops.accept(gw(request), token, name=form(request, "name"),
                                       password=password)
    except NotFound:
        return render(request, "portal/invite.html", status=404, dead=DEAD)
    except ValidationFailed as exc:
        return await _invite_page(request, token, 422, name=form(request, "name"),
                                  errors=exc.fields)
    await sign_in(request, "portal", user.id)
    flash(request, f"Welcome, {user.name}! Sign in next time with your e-mail and password.")
    return redirect("/portal")
