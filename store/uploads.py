"""Uploaded files: one row per file, tying it to its tenant and conversation."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec


class Upload(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    conversation_id: str
    channel_id: str
    file_name: str
    name: str
    content_type: str
    size: int
    inserted_at: str


def insert(
    conn: sqlite3.Connection,
    *,
    id: str,
    tenant_id: str,
    conversation_id: str,
    file_name: str,
    name: str,
    content_type: str,
    size: int,
    now: str,
) -> None:
    conn.execute(
        """INSERT INTO uploads (id, tenant_id, conversation_id, file_name, name, content_type,
                                size, inserted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (id, tenant_id, conversation_id, file_name, name, content_type, size, now),
    )


def stored_bytes(conn: sqlite3.Connection, tenant_id: str) -> int:
    row = conn.execute("SELECT coalesce(sum(size), 0) FROM uploads WHERE tenant_id = ?",
                       (tenant_id,)).fetchone()
    return int(row[0])


def insert_within(conn: sqlite3.Connection, quota: int, **fields: Any) -> bool:
    """``insert`` unless the tenant's uploads would then exceed ``quota`` bytes (0: no quota).
    One transaction: concurrent uploads cannot all pass the check."""
    if quota and stored_bytes(conn, fields["tenant_id"]) + fields["size"] > quota:
        return False
    insert(conn, **fields)
    return True


def delete(conn: sqlite3.Connection, upload_id: str) -> None:
    conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))


def by_file(conn: sqlite3.Connection, tenant_id: str, file_name: str) -> Upload | None:
    """The upload stored as ``file_name`` for ``tenant_id``, with its conversation's channel."""
    row = conn.execute(
        """SELECT u.id, u.tenant_id, u.conversation_id, c.channel_id, u.file_name, u.name,
                  u.content_type, u.size, u.inserted_at
           FROM uploads u JOIN conversations c ON c.id = u.conversation_id
           WHERE u.tenant_id = ? AND u.file_name = ?""",
        (tenant_id, file_name),
    ).fetchone()
    if row is None:
        return None
    return Upload(id=row[0], tenant_id=row[1], conversation_id=row[2], channel_id=row[3],
                  file_name=row[4], name=row[5], content_type=row[6], size=row[7],
                  inserted_at=row[8])
