"""Tenants: the owners of everything. API keys are stored as SHA-256 hashes only.

Every tenant has a ``slug``: a unique, URL-safe form of its name made when it is created and
kept when it is renamed. It is what a tenant's users type to sign in to the portal, since two
tenants may share a name (docs/admin.md)."""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from typing import Any

from .models import Tenant, from_row
from .util import new_id, page, within

COLUMNS = "id, name, slug, status, alert_webhook_url, api_key_hint, inserted_at, updated_at"
SLUG_MAX = 40


def slugify(name: str) -> str:
    """``"Acme Café, Inc."`` -> ``"acme-cafe-inc"``: ASCII lower-case letters and digits joined
    by single hyphens, at most ``SLUG_MAX`` characters (``"tenant"`` when nothing is left)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:SLUG_MAX].strip("-")
    return slug or "tenant"


def unique_slug(conn: sqlite3.Connection, name: str) -> str:
    """The slug of ``name``, with ``-2``, ``-3``… added when another tenant has it. Writes are
    serialised on one connection, so nothing takes it between this read and the insert (and
    the unique index would refuse it if something did)."""
    base = slugify(name)
    taken = {r[0] for r in conn.execute(
        "SELECT slug FROM tenants WHERE slug = ? OR slug LIKE ? || '-%'", (base, base))}
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base[:SLUG_MAX - len(str(n)) - 1]}-{n}"
    return slug


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
        f"""INSERT INTO tenants (id, name, slug, api_key_hash, api_key_hint, status,
                                 alert_webhook_url, inserted_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (id or new_id(), name, unique_slug(conn, name), api_key_hash, api_key_hint, status,
         alert_webhook_url, now, now),
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


def for_sign_in(conn: sqlite3.Connection, typed: str) -> list[list[Tenant]]:
    """The active tenants a portal user may mean by ``typed``, in two groups, surest first: the
    one whose slug it is, then those with that name (oldest first)."""
    by_slug = conn.execute(
        f"SELECT {COLUMNS} FROM tenants WHERE slug = ? AND status = 'active'",
        (typed.strip().lower(),)).fetchall()
    named = conn.execute(
        f"""SELECT {COLUMNS} FROM tenants WHERE name = ? AND status = 'active'
            ORDER BY inserted_at, id""", (typed.strip(),)).fetchall()
    return [[from_row(Tenant, r) for r in by_slug], [from_row(Tenant, r) for r in named]]


def list_page(
    conn: sqlite3.Connection, *, limit: int = 50, cursor: str | None = None,
    status: str | None = None, tenant_ids: Any = None,
) -> tuple[list[Tenant], str | None]:
    sql = f"SELECT {COLUMNS} FROM tenants WHERE 1=1"
    params: list[Any] = []
    if status:
        sql += " AND status = ?"
        params.append(status)
    clause, more = within("id", tenant_ids)
    sql += clause
    params.extend(more)
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
