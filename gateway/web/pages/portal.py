"""The tenant portal's own pages: a tenant's users see only their tenant. Its home (counts and
channel health), its channels (enable/disable) and its users. Roles: owner and admin manage
users; owner, admin and member may enable/disable channels and rules and retry deliveries;
viewer only reads. (Sign-in is in ``signin``; conversations, deliveries and routing rules are
the admin's pages, scoped to the tenant.)"""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse

import adapters
from store import channels, dashboard, users

from ...auth import actor
from ...domain import ValidationFailed
from ...domain import invites as invite_ops
from ...domain import users as user_ops
from ...http import gw
from ..kit import back, flash, form, found, render
from . import PORTAL, invites
from . import channels as channel_pages
from .channels import set_status
from .users import change_user, new_status

INVITE_ROLES = ("admin", "member", "viewer")


@PORTAL.get("")
async def dashboard_page(request: Request) -> HTTPResponse:
    tenant_id = request.ctx.user.tenant_id

    def read(conn: Any) -> dict[str, Any]:
        external = [c for c in channels.for_tenant(conn, tenant_id)
                    if c.status == "active" and c.type in adapters.DELIVERING_TYPES]
        return {"counts": dashboard.counts(conn, tenant_id), "external": external,
                "health": dashboard.latest_health(conn, tenant_id)}

    return render(request, "portal/dashboard.html", tenant=request.ctx.tenant,
                  **await request.app.ctx.db.read(read))


@PORTAL.get("/channels")
async def channels_page(request: Request) -> HTTPResponse:
    tenant_id = request.ctx.user.tenant_id

    def read(conn: Any) -> dict[str, Any]:
        return {"channels": channels.for_tenant(conn, tenant_id),
                "health": dashboard.latest_health(conn, tenant_id)}

    return render(request, "portal/channels.html", **await request.app.ctx.db.read(read))


@PORTAL.post("/channels/<channel_id:uuid>/status")
async def channel_status(request: Request, channel_id: Any) -> HTTPResponse:
    await set_status(request, str(channel_id), request.ctx.user.tenant_id)
    return back(request, "/portal/channels")


# -- one channel: its page (connect, test event), edited by owners and admins (channels:write)
@PORTAL.get("/channels/<channel_id:uuid>")
async def channel_page(request: Request, channel_id: Any) -> HTTPResponse:
    return await channel_pages.channel_view(request, str(channel_id),
                                            can_edit=request.ctx.principal.can("channels:write"))


@PORTAL.post("/channels/<channel_id:uuid>")
async def channel_edit(request: Request, channel_id: Any) -> HTTPResponse:
    return await channel_pages.channel_save(request, str(channel_id))


@PORTAL.post("/channels/<channel_id:uuid>/verify_token")
async def channel_verify_token(request: Request, channel_id: Any) -> HTTPResponse:
    return await channel_pages.new_verify_token(request, str(channel_id))


@PORTAL.post("/channels/<channel_id:uuid>/test")
async def channel_test(request: Request, channel_id: Any) -> HTTPResponse:
    return await channel_pages.send_test_event(request, str(channel_id),
                                               can_edit=request.ctx.principal.can("channels:write"))


async def _users_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    tenant_id = request.ctx.user.tenant_id
    now = request.app.ctx.now_iso()

    def read(conn: Any) -> dict[str, Any]:
        return {"users": users.list_tenant_users(conn, tenant_id),
                "invites": invite_ops.pending(conn, tenant_id, now)}

    return render(request, "portal/users.html", status=status, roles=INVITE_ROLES,
                  can_manage=request.ctx.principal.can("users:write"),
                  **await request.app.ctx.db.read(read), **extra)


@PORTAL.get("/users")
async def users_page(request: Request) -> HTTPResponse:
    return await _users_page(request)


@PORTAL.post("/users/invites")
async def user_invite(request: Request) -> HTTPResponse:
    """An invitation by link into the signed-in user's tenant (owners are invited from the
    admin panel, not here)."""
    try:
        invite, token = await invites.make(request, request.ctx.user.tenant_id, INVITE_ROLES)
    except ValidationFailed as exc:
        values = {k: form(request, k) for k in ("email", "role")}
        return await _users_page(request, 422, errors=exc.fields, values=values)
    flash(request, f"Invitation made for {invite.email}: send them the link")
    return await _users_page(request, 201,
                             shown_once=invites.shown_once(request, invite.email, token))


@PORTAL.post("/users/invites/<invite_id:uuid>/revoke")
async def invite_revoke(request: Request, invite_id: Any) -> HTTPResponse:
    return await invites.revoke(request, str(invite_id), request.ctx.user.tenant_id,
                                "/portal/users")


@PORTAL.post("/users/<user_id:uuid>/status")
async def user_status(request: Request, user_id: Any) -> HTTPResponse:
    return await change_user(
        request, user_id, "/portal/users", "status",
        lambda: found(user_ops.update_tenant_user(gw(request), actor(request), str(user_id),
                                                  {"status": new_status(request)},
                                                  tenant_id=request.ctx.user.tenant_id)))


@PORTAL.post("/users/<user_id:uuid>/delete")
async def user_delete(request: Request, user_id: Any) -> HTTPResponse:
    return await change_user(
        request, user_id, "/portal/users", "delete",
        lambda: found(user_ops.delete_tenant_user(gw(request), actor(request), str(user_id),
                                                  tenant_id=request.ctx.user.tenant_id)))
