"""Activities: the ordered content of a conversation. ``seq`` is assigned in the write
transaction from the conversation's counter, so order is total and gap-free per conversation."""

from __future__ import annotations

import sqlite3
from typing import Any

from .models import Activity, from_row
from .util import dumps, new_id

COLUMNS = (
    "id, tenant_id, conversation_id, seq, type, sender, text, attachments, metadata, "
    "idempotency_key, source_channel_id, external_id, inserted_at, updated_at, extra"
)

# The statements of :func:`insert`, made once (a new string per call is hashed again by the
# statement cache).
_NEXT_SEQ = """UPDATE conversations SET last_seq = last_seq + 1,
                  last_activity_at = max(coalesce(last_activity_at, ?), ?), updated_at = ?
           WHERE id = ? RETURNING last_seq, last_activity_at"""
_INSERT = f"INSERT INTO activities ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _json(value: Any) -> str:
    """``dumps(value)``, with the empty list and map (most activities' columns) spelt out."""
    return "[]" if value == [] else "{}" if value == {} else dumps(value)


def by_idempotency_key(conn: sqlite3.Connection, conversation_id: str, key: str) -> Activity | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM activities WHERE conversation_id = ? AND idempotency_key = ?",
        (conversation_id, key),
    ).fetchone()
    return from_row(Activity, row) if row else None


def by_external_id(conn: sqlite3.Connection, channel_id: str, external_id: str) -> Activity | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM activities WHERE source_channel_id = ? AND external_id = ?",
        (channel_id, external_id),
    ).fetchone()
    return from_row(Activity, row) if row else None


def insert(
    conn: sqlite3.Connection,
    *,
    tenant_id: str,
    conversation_id: str,
    sender: str,
    now: str,
    type: str = "message",
    text: str | None = None,
    attachments: list[Any] | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    source_channel_id: str | None = None,
    external_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Activity:
    """Insert one activity at the conversation's next ``seq``.

    The caller has checked the conversation (tenant, status) and idempotency in the same
    transaction.
    """
    # ``inserted_at`` never goes back within a conversation, so it sorts like ``seq``: with
    # several worker processes a request's ``now`` is read before it waits for the write lock,
    # and another process's later ``now`` may commit first (or the wall clock may step back).
    row = conn.execute(_NEXT_SEQ, (now, now, now, conversation_id)).fetchone()
    if row is None:
        raise LookupError(conversation_id)
    seq, now = row[0], row[1]
    attachments = attachments if attachments is not None else []
    metadata = metadata if metadata is not None else {}
    extra = extra or {}
    activity_id = new_id()
    conn.execute(_INSERT, (
        activity_id, tenant_id, conversation_id, seq, type, sender, text,
        _json(attachments), _json(metadata), idempotency_key, source_channel_id, external_id,
        now, now, _json(extra),
    ))
    return Activity(
        id=activity_id, tenant_id=tenant_id, conversation_id=conversation_id, seq=seq, type=type,
        sender=sender, text=text, attachments=attachments, metadata=metadata,
        idempotency_key=idempotency_key, source_channel_id=source_channel_id,
        external_id=external_id, inserted_at=now, updated_at=now, extra=extra,
    )


def get(conn: sqlite3.Connection, activity_id: str) -> Activity | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM activities WHERE id = ?", (activity_id,)).fetchone()
    return from_row(Activity, row) if row else None


def list_after(
    conn: sqlite3.Connection, conversation_id: str, *, after_seq: int = 0, limit: int = 10_000,
    max_bytes: int = 0,
) -> list[Activity]:
    """Activities with ``seq > after_seq``, in ``seq`` order, at most ``limit`` — and, with
    ``max_bytes``, no more than fit in that many bytes of text, attachments, metadata and
    extra (at least one): rows are read one by one, so a list of large activities stops early
    instead of loading them all."""
    cursor = conn.execute(
        f"""SELECT {COLUMNS} FROM activities WHERE conversation_id = ? AND seq > ?
            ORDER BY seq LIMIT ?""",
        (conversation_id, after_seq, limit),
    )
    if not max_bytes:
        return [from_row(Activity, r) for r in cursor.fetchall()]
    out: list[Activity] = []
    used = 0
    for r in cursor:
        used += sum(len(v) for v in (r[6], r[7], r[8], r[14]) if isinstance(v, str | bytes))
        if out and used > max_bytes:
            break
        out.append(from_row(Activity, r))
    cursor.close()
    return out


def count(conn: sqlite3.Connection, tenant_id: str | None = None) -> int:
    if tenant_id:
        return conn.execute(
            "SELECT count(*) FROM activities WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()[0]
    return conn.execute("SELECT count(*) FROM activities").fetchone()[0]


def list_after_activity(
    conn: sqlite3.Connection, conversation_id: str, activity_id: str | None, *, limit: int
) -> tuple[list[Activity], int]:
    """Activities after ``activity_id`` (by ``seq``; all of them when the id is None or not in
    this conversation), at most ``limit``, and the seq they follow (replay and watermarks)."""
    after_seq = 0
    if activity_id is not None:
        row = conn.execute(
            "SELECT seq FROM activities WHERE id = ? AND conversation_id = ?",
            (activity_id, conversation_id),
        ).fetchone()
        if row is not None:
            after_seq = row[0]
    return list_after(conn, conversation_id, after_seq=after_seq, limit=limit), after_seq
