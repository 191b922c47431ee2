"""Tenants: the owners of everything. API keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import sqlite3
from typing import Any

from .models import Tenant, from_row
from .util import new_id, page

COLUMNS = "id, name, status, alert_webhook_url, api_key_hint, inserted_at, updated_at"


def create(
    conn: sqlite3.Connection,
    *,
    name: str,
    api_key_hash: str,
    api_key_hint: str,
    now: str,
    status: str = "active",
    alert_webhook_url: str | None = None,
    id: str | None = None,
) -> Tenant:
    row = conn.execute(
        f"""INSERT INTO tenants (id, name, api_key_hash, api_key_hint, status, alert_webhook_url,
                                 inserted_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (id or new_id(), name, api_key_hash, api_key_hint, status, alert_webhook_url, now, now),
    ).fetchone()
    return from_row(Tenant, row)


def get(conn: sqlite3.Connection, tenant_id: str) -> Tenant | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    return from_row(Tenant, row) if row else None


def by_key_hash(conn: sqlite3.Connection, key_hash: str) -> Tenant | None:
    row = conn.execute(
        f"SELECT {COLUMNS}, api_key_hash FROM tenants WHERE api_key_hash = ?", (key_hash,)
    ).fetchone()
    return from_row(Tenant, row) if row else None


def by_name(conn: sqlite3.Connection, name: str) -> list[Tenant]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM tenants WHERE name = ?", (name,)).fetchall()
    return [from_row(Tenant, r) for r in rows]


def list_page(
    conn: sqlite3.Connection, *, limit: int = 50, cursor: str | None = None, status: str | None = None
) -> tuple[list[Tenant], str | None]:
    sql = f"SELECT {COLUMNS} FROM tenants WHERE 1=1"
    params: list[Any] = []
    if status:
        sql += " AND status = ?"
        params.append(status)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(Tenant, r) for r in rows], nxt


def update(conn: sqlite3.Connection, tenant_id: str, changes: dict[str, Any], now: str) -> Tenant | None:
    allowed = {"name", "status", "alert_webhook_url", "api_key_hash", "api_key_hint"}
    sets = {k: v for k, v in changes.items() if k in allowed}
    if not sets:
        return get(conn, tenant_id)
    assignments = ", ".join(f"{k} = ?" for k in sets)
    row = conn.execute(
        f"UPDATE tenants SET {assignments}, updated_at = ? WHERE id = ? RETURNING {COLUMNS}",
        (*sets.values(), now, tenant_id),
    ).fetchone()
    return from_row(Tenant, row) if row else None


def delete(conn: sqlite3.Connection, tenant_id: str) -> bool:
    return conn.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,)).rowcount > 0


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) AS n FROM tenants GROUP BY status").fetchall()
    return {r["status"]: r["n"] for r in rows}
