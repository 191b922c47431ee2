"""The deliveries table as a durable queue: one row per (activity, channel).

Rows are written in the same transaction as their activity (transactional outbox).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from .models import Activity, Delivery, from_row
from .util import new_id, page

COLUMNS = (
    "id, activity_id, channel_id, tenant_id, conversation_id, status, attempts, last_error, "
    "next_attempt_at, leased_until, claim_token, sent_at, delivered_at, read_at, "
    "provider_message_id, metadata, inserted_at, updated_at"
)


def enqueue(conn: sqlite3.Connection, activity: Activity, channel_ids: Iterable[str], now: str) -> int:
    """Create a pending, due-now delivery per channel. Returns how many were created."""
    rows = [
        (new_id(), activity.id, cid, activity.tenant_id, activity.conversation_id, now, now, now)
        for cid in channel_ids
    ]
    if rows:
        conn.executemany(
            """INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, conversation_id,
                                       next_attempt_at, inserted_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (activity_id, channel_id) DO NOTHING""",
            rows,
        )
    return len(rows)


def get(conn: sqlite3.Connection, delivery_id: str) -> Delivery | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return from_row(Delivery, row) if row else None


def for_activities(conn: sqlite3.Connection, activity_ids: list[str]) -> dict[str, list[Delivery]]:
    out: dict[str, list[Delivery]] = {}
    for start in range(0, len(activity_ids), 500):
        chunk = activity_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM deliveries WHERE activity_id IN ({marks}) ORDER BY inserted_at",
            chunk,
        ).fetchall()
        for r in rows:
            d = from_row(Delivery, r)
            out.setdefault(d.activity_id, []).append(d)
    return out


def list_page(
    conn: sqlite3.Connection,
    *,
    tenant_id: str | None = None,
    channel_id: str | None = None,
    activity_id: str | None = None,
    conversation_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Delivery], str | None]:
    sql = f"SELECT {COLUMNS} FROM deliveries WHERE 1=1"
    params: list[Any] = []
    for col, value in (
        ("tenant_id", tenant_id), ("channel_id", channel_id), ("activity_id", activity_id),
        ("conversation_id", conversation_id), ("status", status),
    ):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(Delivery, r) for r in rows], nxt


def counts_by_status(conn: sqlite3.Connection, tenant_id: str | None = None) -> dict[str, int]:
    if tenant_id:
        rows = conn.execute(
            "SELECT status, count(*) AS n FROM deliveries WHERE tenant_id = ? GROUP BY status",
            (tenant_id,),
        ).fetchall()
    else:
        rows = conn.execute("SELECT status, count(*) AS n FROM deliveries GROUP BY status").fetchall()
    return {r["status"]: r["n"] for r in rows}


def retry_now(conn: sqlite3.Connection, delivery_id: str, now: str) -> Delivery | None:
    """Make a failed or pending delivery due now (a fresh set of attempts for a failed one)."""
    row = conn.execute(
        f"""UPDATE deliveries
               SET status = 'pending', next_attempt_at = ?, updated_at = ?,
                   attempts = CASE WHEN status = 'failed' THEN 0 ELSE attempts END
             WHERE id = ? AND status IN ('failed', 'pending') AND claim_token IS NULL
         RETURNING {COLUMNS}""",
        (now, now, delivery_id),
    ).fetchone()
    return from_row(Delivery, row) if row else None
