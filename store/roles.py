"""Custom roles: named sets of permissions made by super admins (the built-in roles live in
``gateway.domain.authz``, not here). ``permissions`` is a JSON list of ``family:action``."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from .models import from_row
from .util import dumps, new_id

COLUMNS = "id, name, description, permissions, inserted_at, updated_at"


class Role(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str
    permissions: list[str]
    inserted_at: str
    updated_at: str


def create(conn: sqlite3.Connection, *, name: str, description: str, permissions: list[str],
           now: str) -> Role:
    row = conn.execute(
        f"INSERT INTO roles ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}",
        (new_id(), name, description, dumps(permissions), now, now)).fetchone()
    return from_row(Role, row)


def get(conn: sqlite3.Connection, role_id: str) -> Role | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM roles WHERE id = ?", (role_id,)).fetchone()
    return from_row(Role, row) if row else None


def by_name(conn: sqlite3.Connection, name: str) -> Role | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM roles WHERE name = ?", (name,)).fetchone()
    return from_row(Role, row) if row else None


def list_all(conn: sqlite3.Connection) -> list[Role]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM roles ORDER BY name").fetchall()
    return [from_row(Role, r) for r in rows]


def update(conn: sqlite3.Connection, role_id: str, changes: dict[str, Any], now: str) -> Role | None:
    sets = {k: (dumps(v) if k == "permissions" else v) for k, v in changes.items()
            if k in ("description", "permissions")}
    if not sets:
        return get(conn, role_id)
    assignments = ", ".join(f"{k} = ?" for k in sets)
    row = conn.execute(
        f"UPDATE roles SET {assignments}, updated_at = ? WHERE id = ? RETURNING {COLUMNS}",
        (*sets.values(), now, role_id)).fetchone()
    return from_row(Role, row) if row else None


def delete(conn: sqlite3.Connection, role_id: str) -> bool:
    return conn.execute("DELETE FROM roles WHERE id = ?", (role_id,)).rowcount > 0


def holders(conn: sqlite3.Connection, name: str) -> int:
    """How many admin users and live tokens hold the role of this name."""
    users = conn.execute("SELECT count(*) FROM admin_users WHERE role = ?", (name,)).fetchone()[0]
    tokens = conn.execute("SELECT count(*) FROM admin_tokens WHERE role = ? AND revoked_at IS NULL",
                          (name,)).fetchone()[0]
    return int(users) + int(tokens)
