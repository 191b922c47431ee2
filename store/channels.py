"""Channels: a tenant's integration endpoints. Secrets are kept encrypted (``secret_enc``,
made by the caller) and as a SHA-256 hash for lookup by secret."""

from __future__ import annotations

import sqlite3
from typing import Any

from .models import Channel, from_row
from .util import dumps, new_id, page, within

COLUMNS = (
    "id, tenant_id, name, status, type, mode, config, transformations, secret_enc, "
    "inserted_at, updated_at"
)


def create(
    conn: sqlite3.Connection,
    *,
    tenant_id: str,
    name: str,
    type: str,
    mode: str,
    config: dict[str, Any],
    transformations: list[Any],
    secret_hash: str,
    secret_enc: str,
    now: str,
    status: str = "active",
    id: str | None = None,
) -> Channel:
    row = conn.execute(
        f"""INSERT INTO channels (id, tenant_id, name, status, type, mode, config, transformations,
                                  secret_hash, secret_enc, inserted_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (
            id or new_id(), tenant_id, name, status, type, mode, dumps(config),
            dumps(transformations), secret_hash, secret_enc, now, now,
        ),
    ).fetchone()
    return from_row(Channel, row)


def get(conn: sqlite3.Connection, channel_id: str) -> Channel | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM channels WHERE id = ?", (channel_id,)).fetchone()
    return from_row(Channel, row) if row else None


def get_for_tenant(conn: sqlite3.Connection, tenant_id: str, channel_id: str) -> Channel | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM channels WHERE id = ? AND tenant_id = ?", (channel_id, tenant_id)
    ).fetchone()
    return from_row(Channel, row) if row else None


def by_secret_hash(conn: sqlite3.Connection, secret_hash: str) -> Channel | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM channels WHERE secret_hash = ?", (secret_hash,)
    ).fetchone()
    return from_row(Channel, row) if row else None


def many(conn: sqlite3.Connection, ids: list[str]) -> list[Channel]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT {COLUMNS} FROM channels WHERE id IN ({marks})", ids).fetchall()
    return [from_row(Channel, r) for r in rows]


def for_tenant(conn: sqlite3.Connection, tenant_id: str) -> list[Channel]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM channels WHERE tenant_id = ? ORDER BY name", (tenant_id,)
    ).fetchall()
    return [from_row(Channel, r) for r in rows]


def list_page(
    conn: sqlite3.Connection,
    *,
    tenant_id: str | None = None,
    type: str | None = None,
    mode: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    tenant_ids: Any = None,
    channel_ids: Any = None,
) -> tuple[list[Channel], str | None]:
    sql = f"SELECT {COLUMNS} FROM channels WHERE 1=1"
    params: list[Any] = []
    for col, value in (("tenant_id", tenant_id), ("type", type), ("mode", mode), ("status", status)):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    for col, ids in (("tenant_id", tenant_ids), ("id", channel_ids)):
        clause, more = within(col, ids)
        sql += clause
        params.extend(more)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(Channel, r) for r in rows], nxt


def update(conn: sqlite3.Connection, channel_id: str, changes: dict[str, Any], now: str) -> Channel | None:
    allowed = {"name", "status", "mode", "config", "transformations", "secret_hash", "secret_enc"}
    sets: dict[str, Any] = {}
    for key, value in changes.items():
        if key in allowed:
            sets[key] = dumps(value) if key in ("config", "transformations") else value
    if not sets:
        return get(conn, channel_id)
    assignments = ", ".join(f"{k} = ?" for k in sets)
    row = conn.execute(
        f"UPDATE channels SET {assignments}, updated_at = ? WHERE id = ? RETURNING {COLUMNS}",
        (*sets.values(), now, channel_id),
    ).fetchone()
    return from_row(Channel, row) if row else None


def delete(conn: sqlite3.Connection, channel_id: str) -> bool:
    return conn.execute("DELETE FROM channels WHERE id = ?", (channel_id,)).rowcount > 0


def name_taken(conn: sqlite3.Connection, tenant_id: str, name: str, exclude_id: str | None = None) -> bool:
    row = conn.execute(
        "SELECT 1 FROM channels WHERE tenant_id = ? AND name = ? AND id IS NOT ?",
        (tenant_id, name, exclude_id),
    ).fetchone()
    return row is not None


# -- what the channel page shows about inbound traffic (m0013) -------------------------------
def note_inbound(conn: sqlite3.Connection, channel_id: str, now: str,
                 refusal: str | None = None) -> None:
    """Record a provider's verification (``refusal`` None) or a refused inbound message."""
    if refusal is None:
        conn.execute(
            """INSERT INTO channel_inbound_status (channel_id, tenant_id, last_verification_at)
               SELECT id, tenant_id, ? FROM channels WHERE id = ?
               ON CONFLICT (channel_id) DO UPDATE SET last_verification_at = excluded.last_verification_at""",
            (now, channel_id))
    else:
        conn.execute(
            """INSERT INTO channel_inbound_status (channel_id, tenant_id, last_refusal_at,
                   last_refusal_reason)
               SELECT id, tenant_id, ?, ? FROM channels WHERE id = ?
               ON CONFLICT (channel_id) DO UPDATE SET last_refusal_at = excluded.last_refusal_at,
                   last_refusal_reason = excluded.last_refusal_reason""",
            (now, refusal[:500], channel_id))


def inbound_status(conn: sqlite3.Connection, channel_id: str) -> dict[str, Any]:
    """Last verification, last refusal (and its reason), last inbound message of a channel."""
    row = conn.execute(
        """SELECT last_verification_at, last_refusal_at, last_refusal_reason
             FROM channel_inbound_status WHERE channel_id = ?""", (channel_id,)).fetchone()
    last = conn.execute("SELECT max(inserted_at) FROM activities WHERE source_channel_id = ?",
                        (channel_id,)).fetchone()
    out: dict[str, Any] = dict(row) if row else {
        "last_verification_at": None, "last_refusal_at": None, "last_refusal_reason": None}
    out["last_inbound_at"] = last[0] if last else None
    return out


def active_of_types(conn: sqlite3.Connection, types: list[str]) -> list[Channel]:
    """Active channels of ``types`` (every tenant's): the embedded SMTP server's mailboxes."""
    if not types:
        return []
    marks = ",".join("?" * len(types))
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM channels WHERE type IN ({marks}) AND status = 'active'", types,
    ).fetchall()
    return [from_row(Channel, r) for r in rows]
