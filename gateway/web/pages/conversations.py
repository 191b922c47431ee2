"""Conversations, in both areas: the list (filtered by status, channel and, for admins, tenant)
and one conversation with its live timeline (the page polls ``timeline.json``). In the portal
every query is limited to the signed-in user's tenant."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect, text

from store import channels, conversations, dashboard, tenants

from ...http import json
from .. import kit
from ..kit import arg, flash, render
from . import both


@both("/conversations", "conversations")
async def conversations_page(request: Request) -> HTTPResponse:
    tenant_id = kit.scope(request)
    channel_id = arg(request, "channel_id")

    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt, total = dashboard.conversation_page(
                conn, tenant_id=tenant_id, status=arg(request, "status"), limit=50,
                channel_id=channel_id if kit.is_uuid(channel_id) else None,
                q=(arg(request, "q") or "")[:200] or None, cursor=arg(request, "cursor"))
        except ValueError:
            items, nxt, total = [], None, 0
        return {"conversations": items, "next": nxt, "total": total,
                "channel_list": dashboard.all_names(conn, "channels", tenant_id),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "channel_names": dashboard.names(conn, "channels", {c["channel_id"] for c in items}),
                "tenant_names": dashboard.names(conn, "tenants", {c["tenant_id"] for c in items})}

    return render(request, "conversations.html", **await request.app.ctx.db.read(read))


def _conversation(conn: Any, request: Request, conversation_id: str) -> Any:
    if (tenant_id := kit.own_tenant(request)) is not None:
        return conversations.get_for_tenant(conn, tenant_id, conversation_id)
    return conversations.get(conn, conversation_id)


@both("/conversations/<conversation_id:uuid>", "conversation")
async def conversation_page(request: Request, conversation_id: Any) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any] | None:
        conv = _conversation(conn, request, str(conversation_id))
        if conv is None:
            return None
        return {"conversation": conv, "channel": channels.get(conn, conv.channel_id),
                "tenant": tenants.get(conn, conv.tenant_id),
                "timeline": dashboard.timeline(conn, conv.id)}

    data = await request.app.ctx.db.read(read)
    if data is None:
        flash(request, "Conversation not found", "error")
        return redirect(f"/{request.ctx.area}/conversations")
    return render(request, "conversation.html", **data)


@both("/conversations/<conversation_id:uuid>/timeline.json", "timeline")
async def timeline_json(request: Request, conversation_id: Any) -> HTTPResponse:
    """What the page's poller fetches every second: the timeline with delivery badges."""
    def read(conn: Any) -> dict[str, Any] | None:
        conv = _conversation(conn, request, str(conversation_id))
        if conv is None:
            return None
        return {"status": conv.status, "items": dashboard.timeline(conn, conv.id)}

    data = await request.app.ctx.db.read(read)
    if data is None:
        return text("Not Found", status=404)
    response = json(data)
    response.headers["cache-control"] = "no-store"
    return response
