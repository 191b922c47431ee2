"""``POST|GET /api/v1/conversations/:id/activities`` — the hot write path."""

from __future__ import annotations

import sqlite3

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import activities, conversations, queue

from ... import errors
from ...auth import check_channel_scope, check_scope, tenant_auth, user_sender
from ...domain.activities import NewActivity, create
from ...http import decode, gw, json, uuid_param
from ...shapes import delivery_summary
from ..schemas import ActivityIn, activity_out

bp = Blueprint("compat_activities")

MAX_IDEMPOTENCY_KEY = 255


@bp.post("/conversations/<conversation_id>/activities")
async def create_activity(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    conversation_id = uuid_param(conversation_id, "conversation_id")
    tenant, claims = await tenant_auth(request)
    check_scope(claims, conversation_id)
    if claims is not None:  # an API key has no channel scope
        await check_channel_scope(request, tenant.id, claims, conversation_id)
    await ctx.rate_limit(request, "activity_create", tenant.id)
    body = decode(request, ActivityIn)
    key = request.headers.get("x-idempotency-key")
    if key is not None and (not key or len(key) > MAX_IDEMPOTENCY_KEY):
        raise errors.bad_request(
            f"x-idempotency-key must be 1 to {MAX_IDEMPOTENCY_KEY} characters", "invalid_idempotency_key"
        )
    new = NewActivity(
        type=body.type or "message", sender=user_sender(claims) or body.sender or "user",
        text=body.text,
        attachments=body.attachments, metadata=body.metadata, idempotency_key=key,
    )
    result = await create(gw(request), tenant.id, conversation_id, new)
    return json({"data": activity_out(result.activity)}, status=201)


def _list_tx(conn: sqlite3.Connection, tenant_id: str, conversation_id: str, cap: int,
             with_deliveries: bool, max_bytes: int = 0):
    conv = conversations.get_for_tenant(conn, tenant_id, conversation_id)
    if conv is None:
        return None
    # At most `cap` rows and `max_bytes` of content (CONVERGER_LIST_MAX_BYTES, issue 13).
    items = activities.list_after(conn, conversation_id, limit=cap, max_bytes=max_bytes)
    deliveries = queue.for_activities(conn, [a.id for a in items]) if with_deliveries else {}
    return items, deliveries


@bp.get("/conversations/<conversation_id>/activities")
async def list_activities(request: Request, conversation_id: str) -> HTTPResponse:
    ctx = gw(request)
    conversation_id = uuid_param(conversation_id, "conversation_id")
    tenant, claims = await tenant_auth(request)
    check_scope(claims, conversation_id)
    await check_channel_scope(request, tenant.id, claims, conversation_id)
    include = request.args.get("include", "")
    if include not in ("", "deliveries"):
        raise errors.bad_request("include must be 'deliveries'", "invalid_query")
    found = await ctx.db.read(
        _list_tx, tenant.id, conversation_id, ctx.settings.activity_list_cap, include == "deliveries",
        ctx.settings.list_max_bytes,
    )
    if found is None:
        raise errors.not_found()
    items, deliveries = found
    out = []
    for a in items:
        view = activity_out(a)
        if include:
            view.deliveries = [delivery_summary(d) for d in deliveries.get(a.id, [])]
        out.append(view)
    return json({"data": out})
