"""``POST /tokens/generate`` (channel secret → unscoped token) and ``POST /tokens/refresh``."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from ... import errors
from ...http import gw, json
from ...tokens import CONVERGER_LIFETIME, secret_version
from .auth import authenticate

bp = Blueprint("converger_tokens")


@bp.post("/tokens/generate")
async def generate(request: Request) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request, secret_ok=True)
    await ctx.rate_limit(request, "cg_token")
    if principal.mode != "secret":
        raise errors.bad_request("Token generation requires channel secret, not a token",
                                 "secret_required", plain=True)
    ch = principal.channel
    token = ctx.tokens.converger_token(ch.id, ch.tenant_id, sv=secret_version(ch))
    return json({"conversationId": None, "token": token, "expires_in": CONVERGER_LIFETIME})


@bp.post("/tokens/refresh")
async def refresh(request: Request) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    await ctx.rate_limit(request, "cg_token")
    ch, scope = principal.channel, principal.scope
    token = ctx.tokens.converger_token(ch.id, ch.tenant_id, scope, sv=secret_version(ch))
    return json({"conversationId": scope, "token": token, "expires_in": CONVERGER_LIFETIME})
