"""Audit log: who changed what. Written in the same transaction as the change; secrets never
enter it."""

from __future__ import annotations

import sqlite3
from typing import Any

from .models import AuditLog, from_row
from .util import dumps, new_id, page, within

COLUMNS = "id, tenant_id, actor_type, actor_id, action, resource_type, resource_id, changes, inserted_at"

REDACTED_KEYS = frozenset(
    {
        "api_key", "api_key_hash", "secret", "secret_hash", "secret_enc", "password",
        "password_hash", "token", "token_hash", "access_token", "app_secret", "verify_token",
    }
)


def redact(value: Any) -> Any:
    """Drop secret-bearing keys at any depth."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if k not in REDACTED_KEYS}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def record(
    conn: sqlite3.Connection,
    *,
    actor_type: str,
    actor_id: str,
    action: str,
    resource_type: str,
    resource_id: str,
    now: str,
    tenant_id: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    changes = {"before": redact(before), "after": redact(after)}
    conn.execute(
        f"INSERT INTO audit_logs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (new_id(), tenant_id, actor_type, actor_id, action, resource_type, resource_id,
         dumps(changes), now),
    )


def list_page(
    conn: sqlite3.Connection,
    *,
    tenant_id: str | None = None,
    actor_type: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    tenant_ids: Any = None,
) -> tuple[list[AuditLog], str | None]:
    sql = f"SELECT {COLUMNS} FROM audit_logs WHERE 1=1"
    params: list[Any] = []
    for col, value in (
        ("tenant_id", tenant_id), ("actor_type", actor_type), ("action", action),
        ("resource_type", resource_type), ("resource_id", resource_id),
    ):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    clause, more = within("tenant_id", tenant_ids)
    sql += clause
    params.extend(more)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(AuditLog, r) for r in rows], nxt
