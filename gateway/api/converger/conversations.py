"""``POST /conversations`` and ``GET /conversations/:id``: a conversation, a token scoped to
it, and the socket URL to stream it."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store.models import Channel

from ...domain import conversations as conversation_ops
from ...http import gw, json
from ...tokens import CONVERGER_LIFETIME, secret_version
from .auth import authenticate, conversation, stream_url

bp = Blueprint("converger_conversations")


def _answer(request: Request, ch: Channel, conversation_id: str,
            watermark: str | None = None) -> dict[str, object]:
    token = gw(request).tokens.converger_token(ch.id, ch.tenant_id, conversation_id,
                                               sv=secret_version(ch))
    return {"conversationId": conversation_id, "token": token, "expires_in": CONVERGER_LIFETIME,
            "streamUrl": stream_url(request, token, conversation_id, watermark)}


@bp.post("/conversations")
async def create(request: Request) -> HTTPResponse:
    """The body is ignored, as in the original."""
    ctx = gw(request)
    principal = await authenticate(request)
    ch = principal.channel
    await ctx.rate_limit(request, "conversation_create", ch.tenant_id)
    conv = await conversation_ops.create(ctx, tenant_id=ch.tenant_id, channel_id=ch.id,
                                         metadata={"source": "converger"})
    return json(_answer(request, ch, conv.id), status=201)


@bp.get("/conversations/<conversation_id>")
async def show(request: Request, conversation_id: str) -> HTTPResponse:
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    ch = principal.channel
    return json(_answer(request, ch, conv.id, request.args.get("watermark")))
