"""Admin API tokens for the management API. Only a SHA-256 hash of each token is kept."""

from __future__ import annotations

import sqlite3

from .models import AdminToken, from_row
from .util import dumps, new_id

COLUMNS = ("id, name, token_hint, role, created_by, last_used_at, revoked_at, inserted_at, "
           "tenant_scope, channel_scope, expires_at")


def create(
    conn: sqlite3.Connection,
    *,
    name: str,
    token_hash: str,
    token_hint: str,
    now: str,
    role: str = "admin",
    created_by: str | None = None,
    tenant_scope: list[str] | None = None,
    channel_scope: list[str] | None = None,
    expires_at: str | None = None,
) -> AdminToken:
    """``tenant_scope``/``channel_scope``: None for every tenant/channel; ``expires_at``: None
    for never."""
    row = conn.execute(
        f"""INSERT INTO admin_tokens (id, name, token_hash, token_hint, role, created_by, inserted_at,
                                      tenant_scope, channel_scope, expires_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (new_id(), name, token_hash, token_hint, role, created_by, now,
         None if tenant_scope is None else dumps(tenant_scope),
         None if channel_scope is None else dumps(channel_scope), expires_at),
    ).fetchone()
    return from_row(AdminToken, row)


def by_hash(conn: sqlite3.Connection, token_hash: str) -> AdminToken | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        (token_hash,),
    ).fetchone()
    return from_row(AdminToken, row) if row else None


def get(conn: sqlite3.Connection, token_id: str) -> AdminToken | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM admin_tokens WHERE id = ?", (token_id,)).fetchone()
    return from_row(AdminToken, row) if row else None


def list_all(conn: sqlite3.Connection) -> list[AdminToken]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM admin_tokens ORDER BY inserted_at DESC").fetchall()
    return [from_row(AdminToken, r) for r in rows]


def revoke(conn: sqlite3.Connection, token_id: str, now: str) -> bool:
    cur = conn.execute(
        "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id)
    )
    return cur.rowcount > 0


def touch(conn: sqlite3.Connection, token_id: str, now: str) -> None:
    """Record a use of the token (its ``last_used_at``)."""
    conn.execute("UPDATE admin_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
