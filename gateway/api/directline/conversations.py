"""``POST /conversations`` (start one; a token from ``tokens/generate`` starts its own) and
``GET /conversations/<id>?watermark=`` (reconnect: a fresh token and a ``streamUrl`` that
resumes after the watermark)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store.models import Conversation

from ...domain import conversations as conversation_ops
from ...http import gw, json
from ...tokens import CONVERGER_LIFETIME, secret_version
from ..converger.auth import Principal, conversation
from .auth import authenticate, stream_url, watermark_anchor
from .tokens import SOURCE

bp = Blueprint("directline_conversations")


def _answer(request: Request, principal: Principal, conv: Conversation,
            watermark: str | None = None) -> dict[str, object]:
    ch = principal.channel
    token = gw(request).tokens.converger_token(ch.id, ch.tenant_id, conv.id, user=principal.user,
                                               sv=secret_version(ch))
    return {"conversationId": conv.id, "token": token, "expires_in": CONVERGER_LIFETIME,
            "streamUrl": stream_url(request, token, conv.id, watermark)}


@bp.post("/conversations")
async def start(request: Request) -> HTTPResponse:
    """The body (``user``, ``locale``) is accepted and ignored."""
    ctx = gw(request)
    principal = await authenticate(request)
    if principal.scope is not None:  # started by tokens/generate: this is its conversation
        conv = await conversation(request, principal, principal.scope)
        return json(_answer(request, principal, conv), status=200)
    ch = principal.channel
    await ctx.rate_limit(request, "conversation_create", ch.tenant_id)
    conv = await conversation_ops.create(ctx, tenant_id=ch.tenant_id, channel_id=ch.id,
                                         metadata=dict(SOURCE))
    return json(_answer(request, principal, conv), status=201)


@bp.get("/conversations/<conversation_id>")
async def reconnect(request: Request, conversation_id: str) -> HTTPResponse:
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    wm = request.args.get("watermark") or None
    await watermark_anchor(request, conv, wm)
    return json(_answer(request, principal, conv, wm))
