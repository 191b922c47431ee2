"""Channels: create (the secret is shown once), list, show, update, rotate secret, mint a
channel token, run a channel type's management action, delete."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import channels, templates

from ... import channel_actions, errors
from ...auth import admin_auth, authorize_body_tenant, channel_ids, tenant_ids
from ...domain import channels as channel_ops
from ...http import decode, empty, gw, int_arg, json, set_fields, uuid_param
from ...tokens import LEGACY_LIFETIME, secret_version
from ..schemas import ChannelCreate, ChannelPatch, TokenOut, channel_out

bp = Blueprint("manage_channels")


def _out(ctx, channel, secret=None):
    return channel_out(channel, channel_ops.masked_config(ctx.cipher, channel.config), secret)


@bp.post("/channels")
async def create(request: Request) -> HTTPResponse:
    ctx = gw(request)
    who = await admin_auth(request)
    body = decode(request, ChannelCreate, empty_ok=False)
    uuid_param(body.tenant_id, "tenant_id")
    await authorize_body_tenant(request, who, body.tenant_id, "channels:write")
    channel, secret = await channel_ops.create(
        ctx, who.actor, tenant_id=body.tenant_id, name=body.name, type=body.type, mode=body.mode,
        config=body.config, transformations=body.transformations, status=body.status)
    return json({"data": _out(ctx, channel, secret)}, status=201)


@bp.get("/channels")
async def index(request: Request) -> HTTPResponse:
    ctx = gw(request)
    who = await admin_auth(request)
    limit = int_arg(request, "limit", 50)
    args = request.args
    tenant_id = args.get("tenant_id")
    if tenant_id:
        uuid_param(tenant_id, "tenant_id")
    scope, chans = tenant_ids(who, tenant_id), channel_ids(who)
    try:
        items, nxt = await ctx.db.read(
            lambda c: channels.list_page(
                c, tenant_id=tenant_id, type=args.get("type"), mode=args.get("mode"),
                status=args.get("status"), limit=limit, cursor=args.get("cursor"),
                tenant_ids=scope, channel_ids=chans,
            )
        )
    except ValueError:
        raise errors.bad_request("invalid cursor", "invalid_cursor") from None
    return json({"data": [_out(ctx, c) for c in items], "next": nxt})


@bp.get("/channels/<channel_id>")
async def show(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    await admin_auth(request)
    channel = await ctx.db.read(channels.get, channel_id)
    if channel is None:
        raise errors.not_found()
    return json({"data": _out(ctx, channel)})


@bp.patch("/channels/<channel_id>")
async def update(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    who = await admin_auth(request)
    changes = set_fields(decode(request, ChannelPatch))
    channel = await channel_ops.update(ctx, who.actor, channel_id, changes)
    return json({"data": _out(ctx, channel)})


@bp.post("/channels/<channel_id>/rotate-secret")
async def rotate_secret(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    who = await admin_auth(request)
    channel, secret = await channel_ops.rotate_secret(ctx, who.actor, channel_id)
    return json({"data": _out(ctx, channel, secret)})


@bp.post("/channels/<channel_id>/token")
async def mint_token(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    await admin_auth(request)
    channel = await ctx.db.read(channels.get, channel_id)
    if channel is None:
        raise errors.not_found()
    token = ctx.tokens.channel_token(channel.id, channel.tenant_id, sv=secret_version(channel))
    return json(TokenOut(token, LEGACY_LIFETIME))


@bp.post("/channels/<channel_id>/actions/<action>")
async def action(request: Request, channel_id: str, action: str) -> HTTPResponse:
    """Run a channel type's management action: the provider's answer, 404 (no such channel
    or action) or 502 with the provider's own message."""
    channel_id = uuid_param(channel_id)
    await admin_auth(request)
    result = await channel_actions.run(gw(request), channel_id, action,
                                       channel_actions.inbound_url(request, channel_id))
    if not result.ok:
        raise errors.ApiError(502, "provider_error", result.error or "the provider refused",
                              legacy={"error": result.error})
    return json({"data": {"action": action, "ok": True, "result": result.data}})


@bp.get("/channels/<channel_id>/templates")
async def list_templates(request: Request, channel_id: str) -> HTTPResponse:
    """The WhatsApp message templates last synced for the channel (``POST …/actions/
    sync_templates`` syncs them): name, language, status, category, components."""
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    await admin_auth(request)

    def read(conn: Any) -> list[dict[str, Any]] | None:
        if channels.get(conn, channel_id) is None:
            return None
        return [{**t.as_dict(), "synced_at": t.synced_at}
                for t in templates.for_channel(conn, channel_id)]

    found = await ctx.db.read(read)
    if found is None:
        raise errors.not_found()
    return json({"data": found})


@bp.delete("/channels/<channel_id>")
async def delete(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    who = await admin_auth(request)
    await channel_ops.delete(ctx, who.actor, channel_id)
    return empty(204)
