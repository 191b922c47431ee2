"""Channels: create (the secret is shown once), list, show, update, rotate secret, mint a
channel token, run a channel type's management action, delete."""

from __future__ import annotations

from typing import Any

import aiohttp
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

import adapters
from store import channels

from ... import errors, outbound
from ...auth import admin_auth
from ...domain import channels as channel_ops
from ...http import decode, empty, gw, int_arg, json, set_fields, uuid_param
from ...tokens import LEGACY_LIFETIME
from ..schemas import ChannelCreate, ChannelPatch, TokenOut, channel_out

bp = Blueprint("manage_channels")


def _out(ctx, channel, secret=None):
    return channel_out(channel, channel_ops.masked_config(ctx.cipher, channel.config), secret)


@bp.post("/channels")
async def create(request: Request) -> HTTPResponse:
    ctx = gw(request)
    who = await admin_auth(request, write=True)
    body = decode(request, ChannelCreate, empty_ok=False)
    uuid_param(body.tenant_id, "tenant_id")
    channel, secret = await channel_ops.create(
        ctx, who.actor, tenant_id=body.tenant_id, name=body.name, type=body.type, mode=body.mode,
        config=body.config, transformations=body.transformations, status=body.status)
    return json({"data": _out(ctx, channel, secret)}, status=201)


@bp.get("/channels")
async def index(request: Request) -> HTTPResponse:
    ctx = gw(request)
    await admin_auth(request)
    limit = int_arg(request, "limit", 50)
    args = request.args
    tenant_id = args.get("tenant_id")
    if tenant_id:
        uuid_param(tenant_id, "tenant_id")
    try:
        items, nxt = await ctx.db.read(
            lambda c: channels.list_page(
                c, tenant_id=tenant_id, type=args.get("type"), mode=args.get("mode"),
                status=args.get("status"), limit=limit, cursor=args.get("cursor"),
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
    who = await admin_auth(request, write=True)
    changes = set_fields(decode(request, ChannelPatch))
    channel = await channel_ops.update(ctx, who.actor, channel_id, changes)
    return json({"data": _out(ctx, channel)})


@bp.post("/channels/<channel_id>/rotate-secret")
async def rotate_secret(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    who = await admin_auth(request, write=True)
    channel, secret = await channel_ops.rotate_secret(ctx, who.actor, channel_id)
    return json({"data": _out(ctx, channel, secret)})


@bp.post("/channels/<channel_id>/token")
async def mint_token(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    await admin_auth(request, write=True)
    channel = await ctx.db.read(channels.get, channel_id)
    if channel is None:
        raise errors.not_found()
    token = ctx.tokens.channel_token(channel.id, channel.tenant_id)
    return json(TokenOut(token, LEGACY_LIFETIME))


def inbound_url(request: Request, channel_id: str) -> str:
    """The channel's public inbound URL: from ``CONVERGER_PUBLIC_URL`` when set, else from
    the request (its scheme and host, as a proxy forwarded them)."""
    base = gw(request).settings.public_url.rstrip("/")
    if not base:
        base = f"{request.scheme}://{request.host}"
    return f"{base}/api/v1/channels/{channel_id}/inbound"


async def run_action(request: Request, channel_id: str, action: str) -> dict[str, Any]:
    """Run ``action`` of the channel's type against its provider: the provider's answer, or
    a 404 (no such channel or action) / 502 (the provider refused, with its message)."""
    ctx = gw(request)
    channel = await ctx.db.read(channels.get, channel_id)
    if channel is None:
        raise errors.not_found()
    adapter = adapters.get(channel.type)
    if adapter is None or action not in adapter.actions:
        raise errors.not_found(f"{channel.type} channels have no action {action!r}",
                               "unknown_action")
    info = channel_ops.channel_info(ctx.cipher, channel)
    timeout = aiohttp.ClientTimeout(total=ctx.settings.webhook_timeout)
    async with outbound.session(ctx.settings, timeout) as session:  # the SSRF policy applies
        result = await adapter.run_action(session, info, action, inbound_url(request, channel.id))
    ctx.log.info("channel %s: action %s %s", channel.id, action,
                 "done" if result.ok else f"refused: {result.error}")
    if not result.ok:
        raise errors.ApiError(502, "provider_error", result.error or "the provider refused",
                              legacy={"error": result.error})
    return {"action": action, "ok": True, "result": result.data}


@bp.post("/channels/<channel_id>/actions/<action>")
async def action(request: Request, channel_id: str, action: str) -> HTTPResponse:
    channel_id = uuid_param(channel_id)
    await admin_auth(request, write=True)
    return json({"data": await run_action(request, channel_id, action)})


@bp.delete("/channels/<channel_id>")
async def delete(request: Request, channel_id: str) -> HTTPResponse:
    ctx = gw(request)
    channel_id = uuid_param(channel_id)
    who = await admin_auth(request, write=True)
    await channel_ops.delete(ctx, who.actor, channel_id)
    return empty(204)
