"""People who log in to the web pages: admin users (the admin panel) and tenant users (the
tenant portal). Only argon2 hashes of passwords are kept; hashing happens in the caller."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from .util import new_id

ADMIN_ROLES = ("super_admin", "admin", "viewer")
TENANT_ROLES = ("owner", "admin", "member", "viewer")
COLUMNS = "id, email, name, role, status, inserted_at, updated_at"
TENANT_COLUMNS = "id, tenant_id, email, name, role, status, inserted_at, updated_at"


class AdminUser(msgspec.Struct, kw_only=True):
    id: str
    email: str
    name: str
    role: str
    status: str
    inserted_at: str
    updated_at: str


class TenantUser(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    email: str
    name: str
    role: str
    status: str
    inserted_at: str
    updated_at: str


def _admin(row: Any) -> AdminUser:
    return AdminUser(**{k: row[k] for k in AdminUser.__struct_fields__})


def _tenant_user(row: Any) -> TenantUser:
    return TenantUser(**{k: row[k] for k in TenantUser.__struct_fields__})


# -- admin users ------------------------------------------------------------------------------
def create_admin(
    conn: sqlite3.Connection, *, email: str, name: str, password_hash: str, role: str, now: str
) -> AdminUser:
    row = conn.execute(
        f"""INSERT INTO admin_users (id, email, password_hash, name, role, status, inserted_at,
                                     updated_at)
            VALUES (?, ?, ?, ?, ?, 'active', ?, ?) RETURNING {COLUMNS}""",
        (new_id(), email, password_hash, name, role, now, now),
    ).fetchone()
    return _admin(row)


def get_admin(conn: sqlite3.Connection, user_id: str) -> AdminUser | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM admin_users WHERE id = ?", (user_id,)).fetchone()
    return _admin(row) if row else None


def admin_login_row(conn: sqlite3.Connection, email: str) -> tuple[AdminUser, str] | None:
    """The user with this e-mail (case-insensitive) and its password hash."""
    row = conn.execute(
        f"SELECT {COLUMNS}, password_hash FROM admin_users WHERE email = ?", (email,)
    ).fetchone()
    return (_admin(row), row["password_hash"]) if row else None


def list_admins(conn: sqlite3.Connection) -> list[AdminUser]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM admin_users ORDER BY inserted_at").fetchall()
    return [_admin(r) for r in rows]


def count_admins(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM admin_users").fetchone()[0]


def admin_email_taken(conn: sqlite3.Connection, email: str) -> bool:
    return conn.execute("SELECT 1 FROM admin_users WHERE email = ?", (email,)).fetchone() is not None


def update_admin(
    conn: sqlite3.Connection, user_id: str, changes: dict[str, Any], now: str
) -> AdminUser | None:
    sets = {k: v for k, v in changes.items() if k in ("name", "role", "status", "password_hash")}
    if not sets:
        return get_admin(conn, user_id)
    assignments = ", ".join(f"{k} = ?" for k in sets)
    row = conn.execute(
        f"UPDATE admin_users SET {assignments}, updated_at = ? WHERE id = ? RETURNING {COLUMNS}",
        (*sets.values(), now, user_id),
    ).fetchone()
    return _admin(row) if row else None


def delete_admin(conn: sqlite3.Connection, user_id: str) -> bool:
    return conn.execute("DELETE FROM admin_users WHERE id = ?", (user_id,)).rowcount > 0


# -- tenant users -----------------------------------------------------------------------------
def create_tenant_user(
    conn: sqlite3.Connection, *, tenant_id: str, email: str, name: str, password_hash: str,
    role: str, now: str,
) -> TenantUser:
    row = conn.execute(
        f"""INSERT INTO tenant_users (id, tenant_id, email, password_hash, name, role, status,
                                      inserted_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?) RETURNING {TENANT_COLUMNS}""",
        (new_id(), tenant_id, email, password_hash, name, role, now, now),
    ).fetchone()
    return _tenant_user(row)


def get_tenant_user(conn: sqlite3.Connection, user_id: str) -> TenantUser | None:
    row = conn.execute(
        f"SELECT {TENANT_COLUMNS} FROM tenant_users WHERE id = ?", (user_id,)
    ).fetchone()
    return _tenant_user(row) if row else None


def tenant_login_row(
    conn: sqlite3.Connection, tenant_id: str, email: str
) -> tuple[TenantUser, str] | None:
    row = conn.execute(
        f"SELECT {TENANT_COLUMNS}, password_hash FROM tenant_users WHERE tenant_id = ? AND email = ?",
        (tenant_id, email),
    ).fetchone()
    return (_tenant_user(row), row["password_hash"]) if row else None


def list_tenant_users(conn: sqlite3.Connection, tenant_id: str | None = None) -> list[TenantUser]:
    if tenant_id:
        rows = conn.execute(
            f"SELECT {TENANT_COLUMNS} FROM tenant_users WHERE tenant_id = ? ORDER BY inserted_at",
            (tenant_id,),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {TENANT_COLUMNS} FROM tenant_users ORDER BY inserted_at"
        ).fetchall()
    return [_tenant_user(r) for r in rows]


def tenant_email_taken(conn: sqlite3.Connection, tenant_id: str, email: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM tenant_users WHERE tenant_id = ? AND email = ?", (tenant_id, email)
    ).fetchone() is not None


def update_tenant_user(
    conn: sqlite3.Connection, user_id: str, changes: dict[str, Any], now: str
) -> TenantUser | None:
    sets = {k: v for k, v in changes.items() if k in ("name", "role", "status", "password_hash")}
    if not sets:
        return get_tenant_user(conn, user_id)
    assignments = ", ".join(f"{k} = ?" for k in sets)
    row = conn.execute(
        f"UPDATE tenant_users SET {assignments}, updated_at = ? WHERE id = ? "
        f"RETURNING {TENANT_COLUMNS}",
        (*sets.values(), now, user_id),
    ).fetchone()
    return _tenant_user(row) if row else None


def delete_tenant_user(conn: sqlite3.Connection, user_id: str) -> bool:
    return conn.execute("DELETE FROM tenant_users WHERE id = ?", (user_id,)).rowcount > 0
