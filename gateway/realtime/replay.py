"""Store reads for joins: the conversation check and what to replay, in one read snapshot."""

from __future__ import annotations

import sqlite3

from store import activities, channels, conversations, tenants
from store.models import Activity, Conversation


def load(
    conn: sqlite3.Connection,
    tenant_id: str,
    conversation_id: str,
    after_activity_id: str | None,
    replay: bool,
    cap: int,
) -> tuple[Conversation | None, list[Activity], int]:
    """The conversation (None when not in the tenant, or when the tenant or the conversation's
    channel is disabled), the activities after ``after_activity_id`` (all of them when that id
    is unknown in this conversation; none when not ``replay``) and the seq they follow.

    Without a replay the seq they follow is the conversation's latest: the socket hears what
    is committed after this read, not an activity from before its join that reaches the hub
    later (with worker processes the change feed can bring it a few milliseconds after the
    join)."""
    conv = conversations.get_for_tenant(conn, tenant_id, conversation_id)
    if conv is not None:
        tenant, channel = tenants.get(conn, tenant_id), channels.get(conn, conv.channel_id)
        if tenant is None or not tenant.active or channel is None or not channel.active:
            conv = None
    if conv is None:
        return conv, [], 0
    if not replay:
        return conv, [], conv.last_seq
    items, after_seq = activities.list_after_activity(conn, conversation_id, after_activity_id,
                                                      limit=cap)
    return conv, items, after_seq
