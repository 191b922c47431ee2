"""Conversations: ordered streams of activities inside one channel of one tenant."""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

from .models import ChannelRef, Conversation, from_row
from .util import dumps, new_id, page, within

COLUMNS = (
    "id, tenant_id, channel_id, status, metadata, last_seq, sender_key, last_activity_at, "
    "inserted_at, updated_at"
)


def create(
    conn: sqlite3.Connection,
    *,
    tenant_id: str,
    channel_id: str,
    now: str,
    status: str = "active",
    metadata: dict[str, Any] | None = None,
    sender_key: str | None = None,
    id: str | None = None,
) -> Conversation:
    row = conn.execute(
        f"""INSERT INTO conversations (id, tenant_id, channel_id, status, metadata, sender_key,
                                       inserted_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (id or new_id(), tenant_id, channel_id, status, dumps(metadata or {}), sender_key, now, now),
    ).fetchone()
    return from_row(Conversation, row)


def get(conn: sqlite3.Connection, conversation_id: str) -> Conversation | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()
    return from_row(Conversation, row) if row else None


def get_for_tenant(
    conn: sqlite3.Connection, tenant_id: str, conversation_id: str
) -> Conversation | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM conversations WHERE id = ? AND tenant_id = ?",
        (conversation_id, tenant_id),
    ).fetchone()
    return from_row(Conversation, row) if row else None


class WriteContext(NamedTuple):
    """What an activity's write transaction checks before it inserts (:func:`for_write`)."""

    status: str  # the conversation's
    tenant_status: str | None  # None: no such tenant
    channel: ChannelRef | None  # the conversation's channel
    rules: bool  # the channel is the source of an enabled routing rule


_FOR_WRITE = """SELECT ch.id, ch.tenant_id, ch.status, ch.type, ch.mode,
               c.status AS conversation_status, t.status AS tenant_status,
               EXISTS (SELECT 1 FROM routing_rules r WHERE r.source_channel_id = c.channel_id
                       AND r.tenant_id = c.tenant_id AND r.enabled = 1) AS has_rules
        FROM conversations c
        LEFT JOIN tenants t ON t.id = c.tenant_id
        LEFT JOIN channels ch ON ch.id = c.channel_id
        WHERE c.id = ? AND c.tenant_id = ?"""


def for_write(conn: sqlite3.Connection, tenant_id: str, conversation_id: str) -> WriteContext | None:
    """The tenant's conversation (None: not the tenant's, or no such conversation), with its
    tenant's status, its channel (the columns the write needs: each column read costs) and
    whether routing rules fan out from that channel — one statement instead of four on the
    activity write path (each is a hand-off of the GIL)."""
    row = conn.execute(_FOR_WRITE, (conversation_id, tenant_id)).fetchone()
    if row is None:
        return None
    channel = ChannelRef(row[0], row[1], row[2], row[3], row[4]) if row[0] is not None else None
    return WriteContext(row[5], row[6], channel, bool(row[7]))


def open_thread(conn: sqlite3.Connection, channel_id: str, sender_key: str) -> Conversation | None:
    """The sender's open conversation on a channel (inbound threading), if any."""
    row = conn.execute(
        f"""SELECT {COLUMNS} FROM conversations
            WHERE channel_id = ? AND sender_key = ? AND status = 'active'""",
        (channel_id, sender_key),
    ).fetchone()
    return from_row(Conversation, row) if row else None


def set_status(conn: sqlite3.Connection, conversation_id: str, status: str, now: str) -> None:
    conn.execute(
        "UPDATE conversations SET status = ?, updated_at = ? WHERE id = ?",
        (status, now, conversation_id),
    )


def list_page(
    conn: sqlite3.Connection,
    *,
    tenant_id: str | None = None,
    channel_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    tenant_ids: Any = None,
    channel_ids: Any = None,
) -> tuple[list[Conversation], str | None]:
    sql = f"SELECT {COLUMNS} FROM conversations WHERE 1=1"
    params: list[Any] = []
    for col, value in (("tenant_id", tenant_id), ("channel_id", channel_id), ("status", status)):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    for col, ids in (("tenant_id", tenant_ids), ("channel_id", channel_ids)):
        clause, more = within(col, ids)
        sql += clause
        params.extend(more)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(Conversation, r) for r in rows], nxt
