"""``POST /tokens/generate`` (channel secret → a conversation and a token scoped to it, as
Direct Line does) and ``POST /tokens/refresh`` (a valid token → a fresh one, same scope)."""

from __future__ import annotations

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from ... import errors
from ...domain import conversations as conversation_ops
from ...http import decode, gw, json
from ...tokens import CONVERGER_LIFETIME, secret_version
from .auth import authenticate

bp = Blueprint("directline_tokens")
SOURCE = {"source": "directline"}
MAX_USER_ID = 255


class User(msgspec.Struct, kw_only=True):
    id: str | None = None
    name: str | None = None


class TokenParameters(msgspec.Struct, kw_only=True):
    """``tokens/generate``'s optional body: ``{"user": {"id": "dl_…"}}`` binds the token to
    that sender (the page cannot post as anyone else)."""

    user: User | None = None


@bp.post("/tokens/generate")
async def generate(request: Request) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    await ctx.rate_limit(request, "cg_token")
    if principal.mode != "secret":
        raise errors.directline(403, "secret_required",
                                "Token generation requires the channel secret, not a token")
    params = decode(request, TokenParameters)
    user = params.user.id if params.user is not None and params.user.id else None
    if user is not None and len(user) > MAX_USER_ID:
        raise errors.directline(400, "invalid_user", f"user.id is at most {MAX_USER_ID} characters")
    ch = principal.channel
    await ctx.rate_limit(request, "conversation_create", ch.tenant_id)
    conv = await conversation_ops.create(ctx, tenant_id=ch.tenant_id, channel_id=ch.id,
                                         metadata=dict(SOURCE))
    token = ctx.tokens.converger_token(ch.id, ch.tenant_id, conv.id, user=user,
                                       sv=secret_version(ch))
    return json({"conversationId": conv.id, "token": token, "expires_in": CONVERGER_LIFETIME})


@bp.post("/tokens/refresh")
async def refresh(request: Request) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    await ctx.rate_limit(request, "cg_token")
    if principal.mode != "token":
        raise errors.directline(403, "token_required", "Token refresh requires a token")
    ch, scope = principal.channel, principal.scope
    token = ctx.tokens.converger_token(ch.id, ch.tenant_id, scope, user=principal.user,
                                       sv=secret_version(ch))
    return json({"conversationId": scope, "token": token, "expires_in": CONVERGER_LIFETIME})
