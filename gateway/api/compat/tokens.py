"""``POST /api/v1/tokens``: mint a user (conversation) token with a channel token."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import conversations, tenants

from ... import errors
from ...auth import is_channel_token
from ...http import decode, gw, json, uuid_param
from ...tokens import LEGACY_LIFETIME, TokenError
from ..schemas import TokenIn, TokenOut

bp = Blueprint("compat_tokens")


@bp.post("/tokens")
async def create_token(request: Request) -> HTTPResponse:
    """Check the channel token first, then the conversation: an unknown conversation and one
    of another channel answer alike (the original answered them differently, which told a
    caller which conversation ids exist)."""
    ctx = gw(request)
    await ctx.rate_limit(request, "token_create")
    body = decode(request, TokenIn, plain=True)
    if not body.conversation_id or not body.user_id:
        raise errors.bad_request("conversation_id and user_id are required", "missing_params",
                                 plain=True)
    token = request.headers.get("x-channel-token")
    if token is None:
        raise errors.bad_request("Missing x-channel-token header", "missing_channel_token", plain=True)
    try:
        claims = ctx.tokens.verify_legacy(token)
    except TokenError:
        raise errors.unauthorized("invalid channel token", "invalid_token") from None
    if not is_channel_token(claims):  # a conversation-scoped token mints nothing
        raise errors.forbidden("a channel token is required", "not_channel_token")
    channel_id = claims["channel_id"]
    conversation_id = uuid_param(body.conversation_id, "conversation_id")
    conv = await ctx.db.read(conversations.get, conversation_id)
    if conv is None or conv.channel_id != channel_id or conv.tenant_id != claims.get("tenant_id"):
        raise errors.not_found()
    tenant = await ctx.db.read(tenants.get, conv.tenant_id)
    if tenant is None or not tenant.active:
        raise errors.forbidden("tenant is not active", "tenant_inactive")
    jwt = ctx.tokens.user_token(conv.id, conv.tenant_id, body.user_id)
    return json(TokenOut(jwt, LEGACY_LIFETIME), status=201)
