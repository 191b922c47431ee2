"""``POST /api/v1/conversations`` (channel token) and ``GET /api/v1/conversations/:id``."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import conversations, tenants

from ... import errors
from ...auth import channel_from_token, check_channel_scope, check_scope, tenant_auth
from ...domain import conversations as conversation_ops
from ...http import decode, gw, json, uuid_param
from ..schemas import ConversationIn, conversation_out

bp = Blueprint("compat_conversations")


@bp.post("/conversations")
async def create_conversation(request: Request) -> HTTPResponse:
    ctx = gw(request)
    channel = await channel_from_token(request)
    if not channel.active:
        raise errors.bad_request("Channel is inactive", "channel_inactive", plain=True)
    tenant = await ctx.db.read(tenants.get, channel.tenant_id)
    if tenant is None or not tenant.active:
        raise errors.forbidden("tenant is not active", "tenant_inactive")
    body = decode(request, ConversationIn)
    if body.status not in conversation_ops.STATUSES:
        raise errors.validation({"status": ["is invalid"]}, "status must be active or closed")
    await ctx.rate_limit(request, "conversation_create", channel.tenant_id)
    conv = await conversation_ops.create(ctx, tenant_id=channel.tenant_id, channel_id=channel.id,
                                         status=body.status, metadata=body.metadata)
    return json({"data": conversation_out(conv)}, status=201)


@bp.get("/conversations/<conversation_id>")
async def show_conversation(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    conversation_id = uuid_param(conversation_id, "conversation_id")
    tenant, claims = await tenant_auth(request)
    check_scope(claims, conversation_id)
    await check_channel_scope(request, tenant.id, claims, conversation_id)
    conv = await ctx.db.read(conversations.get_for_tenant, tenant.id, conversation_id)
    if conv is None:
        raise errors.not_found()
    return json({"data": conversation_out(conv)})
