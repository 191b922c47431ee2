"""``POST|GET /conversations/:id/activities``: post an activity; read them after a watermark,
a page at a time (the watermark is opaque: it names the last activity a client has)."""

from __future__ import annotations

from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import activities

from ... import errors
from ...http import decode, json
from ...pipeline.activities import NewActivity, create
from ...views import converger_activity, decode_watermark, encode_watermark
from .auth import authenticate, conversation

bp = Blueprint("converger_activities")

PAGE = 500  # most activities per GET; the client asks again with the returned watermark
MAX_IDEMPOTENCY_KEY = 255


class From(msgspec.Struct, kw_only=True):
    id: str | None = None
    name: str | None = None
    role: str | None = None


class ConvergerActivityIn(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """A Converger activity: ``from.id`` → sender, ``channelData`` (else ``metadata``) →
    metadata. Unknown fields are ignored, as the original ignored them."""

    type: str | None = None
    from_: From | None = None
    text: str | None = None
    attachments: list[dict[str, Any]] = []
    channelData: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    def to_new(self, idempotency_key: str | None = None) -> NewActivity:
        sender = self.from_.id if self.from_ is not None and self.from_.id else "user"
        meta = self.channelData if self.channelData is not None else (self.metadata or {})
        return NewActivity(type=self.type or "message", sender=sender, text=self.text,
                           attachments=self.attachments, metadata=meta,
                           idempotency_key=idempotency_key)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("x-idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise errors.bad_request(
            f"x-idempotency-key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
            "invalid_idempotency_key")
    return key


@bp.post("/conversations/<conversation_id>/activities")
async def post_activity(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = request.app.ctx
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    await ctx.rate_limit(request, "activity_create", conv.tenant_id)
    body = decode(request, ConvergerActivityIn)
    result = await create(request.app, conv.tenant_id, conv.id, body.to_new(idempotency_key(request)))
    return json({"id": result.activity.id})


@bp.get("/conversations/<conversation_id>/activities")
async def list_activities(request: Request, conversation_id: str) -> HTTPResponse:
    """Activities after ``watermark`` in ``seq`` order. No, an empty, or an unknown watermark
    means from the start (as in the original)."""
    ctx = request.app.ctx
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    wm = request.args.get("watermark") or None
    anchor = decode_watermark(wm)
    items, _ = await ctx.db.read(
        lambda conn: activities.list_after_activity(conn, conv.id, anchor, limit=PAGE)
    )
    return json({
        "activities": [converger_activity(a) for a in items],
        "watermark": encode_watermark(items[-1].id) if items else wm,
    })
