"""``POST /conversations/<id>/activities`` (a Direct Line activity, kept in full) and
``GET /conversations/<id>/activities?watermark=`` (polling: what came after the watermark, in
order; typing indicators are streamed only, never polled)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import activities

from ... import errors
from ...domain.activities import create
from ...http import decode, gw, json
from ...shapes import directline_activity, encode_watermark
from ..converger.activities import (
    MAX_IDEMPOTENCY_KEY,
    PAGE,
    ConvergerActivityIn,
    From,
    idempotency_key,
)
from ..converger.auth import conversation
from .auth import authenticate, upload_url, watermark_anchor

bp = Blueprint("directline_activities")

# The Bot Framework's activity types; anything else is refused.
TYPES = frozenset({
    "message", "typing", "event", "invoke", "conversationUpdate", "contactRelationUpdate",
    "endOfConversation", "messageReaction", "installationUpdate", "deleteUserData",
    "messageUpdate", "messageDelete", "suggestion", "trace", "handoff", "command",
    "commandResult",
})
USER_ROLE = "user"


def checked(body: ConvergerActivityIn, user_id: str | None = None,
            bound: str | None = None) -> ConvergerActivityIn:
    """A client's activity as Direct Line takes it: a known ``type``; ``from.role`` is ``user``
    (a client cannot speak as the bot); ``from.id`` is the token's user when it is bound to one
    (``bound``), else from ``?userId=`` when the body has none."""
    if not body.type:
        raise errors.directline(400, "missing_type", "activity.type is required")
    if body.type not in TYPES:
        raise errors.directline(400, "unknown_activity_type",
                                f"unknown activity type: {body.type[:64]}")
    who = body.from_ or From()
    if bound:
        who.id = bound
    elif not who.id and user_id:
        who.id = user_id
    who.role = USER_ROLE
    body.from_ = who
    return body


def client_key(request: Request, body: ConvergerActivityIn) -> str | None:
    """``x-idempotency-key``, else Web Chat's ``channelData.clientActivityID``: a retried send
    ("Send failed. Retry") finds the activity it already made instead of making a second."""
    key = idempotency_key(request)
    if key is None and body.channelData:
        cid = body.channelData.get("clientActivityID")
        if isinstance(cid, str) and 0 < len(cid) <= MAX_IDEMPOTENCY_KEY:
            key = f"dl:{cid}"
    return key


@bp.post("/conversations/<conversation_id>/activities")
async def post_activity(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    await ctx.rate_limit(request, "activity_create", conv.tenant_id)
    body = checked(decode(request, ConvergerActivityIn), bound=principal.user)
    new = body.to_new(client_key(request, body))
    result = await create(gw(request), conv.tenant_id, conv.id, new)
    return json({"id": result.activity.id})


@bp.get("/conversations/<conversation_id>/activities")
async def list_activities(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    principal = await authenticate(request)
    conv = await conversation(request, principal, conversation_id)
    wm = request.args.get("watermark") or None
    anchor = await watermark_anchor(request, conv, wm)
    items, _ = await ctx.db.read(
        lambda conn: activities.list_after_activity(conn, conv.id, anchor, limit=PAGE))
    url = upload_url(request)
    shown: list[dict[str, Any]] = [directline_activity(a, url) for a in items
                                   if a.type != "typing"]
    # The watermark passes the typing indicators too, so they are not read again.
    return json({"activities": shown,
                 "watermark": encode_watermark(items[-1].id) if items else wm})
