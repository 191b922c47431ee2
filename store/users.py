"""People who log in to the web pages: admin users (the admin panel) and tenant users (the
tenant portal). Only argon2 hashes of passwords are kept; hashing happens in the caller."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from .util import dumps, loads, new_id, within

ADMIN_ROLES = ("super_admin", "admin", "viewer")
TENANT_ROLES = ("owner", "admin", "member", "viewer")
COLUMNS = "id, email, name, role, status, inserted_at, updated_at, tenant_scope, sso_subject"
TENANT_COLUMNS = "id, tenant_id, email, name, role, status, inserted_at, updated_at"


class AdminUser(msgspec.Struct, kw_only=True):
    id: str
    email: str
    name: str
    role: str
    status: str
    inserted_at: str
    updated_at: str
    tenant_scope: list[str] | None = None  # the tenants the role applies to; None: every one
    sso_subject: str | None = None  # made at single sign-on: ``issuer sub``


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
    out = {k: row[k] for k in AdminUser.__struct_fields__}
    out["tenant_scope"] = loads(out["tenant_scope"])
    return AdminUser(**out)


def _tenant_user(row: Any) -> TenantUser:
    return TenantUser(**{k: row[k] for k in TenantUser.__struct_fields__})


# -- admin users ------------------------------------------------------------------------------
def create_admin(
    conn: sqlite3.Connection, *, email: str, name: str, password_hash: str, role: str, now: str,
    tenant_scope: list[str] | None = None, sso_subject: str | None = None,
) -> AdminUser:
    row = conn.execute(
        f"""INSERT INTO admin_users (id, email, password_hash, name, role, status, inserted_at,
                                     updated_at, tenant_scope, sso_subject)
            VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (new_id(), email, password_hash, name, role, now, now,
         None if tenant_scope is None else dumps(tenant_scope), sso_subject),
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


def admin_by_sso(conn: sqlite3.Connection, subject: str) -> AdminUser | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM admin_users WHERE sso_subject = ?",
                       (subject,)).fetchone()
    return _admin(row) if row else None


def admin_email_taken(conn: sqlite3.Connection, email: str) -> bool:
    return conn.execute("SELECT 1 FROM admin_users WHERE email = ?", (email,)).fetchone() is not None


def update_admin(
    conn: sqlite3.Connection, user_id: str, changes: dict[str, Any], now: str
) -> AdminUser | None:
    sets = {k: v for k, v in changes.items()
            if k in ("name", "role", "status", "password_hash", "tenant_scope")}
    if "tenant_scope" in sets and sets["tenant_scope"] is not None:
        sets["tenant_scope"] = dumps(sets["tenant_scope"])
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


def list_tenant_users(conn: sqlite3.Connection, tenant_id: str | None = None,
                      tenant_ids: Any = None) -> list[TenantUser]:
    """``tenant_ids``: only these tenants' users (an access scope; None: no limit)."""
    sql = f"SELECT {TENANT_COLUMNS} FROM tenant_users WHERE 1=1"
    params: list[Any] = []
    if tenant_id:
        sql += " AND tenant_id = ?"
        params.append(tenant_id)
    clause, more = within("tenant_id", tenant_ids)
    rows = conn.execute(sql + clause + " ORDER BY inserted_at", [*params, *more]).fetchall()
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


def count_active_super_admins(conn: sqlite3.Connection, *, excluding: str | None = None) -> int:
    """Active, unscoped super admins (who can still manage everything), but ``excluding``."""
    return int(conn.execute(
        "SELECT count(*) FROM admin_users WHERE role = 'super_admin' AND status = 'active' "
        "AND tenant_scope IS NULL AND id <> ?", (excluding or "",)).fetchone()[0])
