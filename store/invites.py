"""Invitations of tenant users (the portal's people): an e-mail, a role and the SHA-256 of the
link's token; used once, until ``expires_at``. The token itself is never stored."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from .util import new_id

COLUMNS = "id, tenant_id, email, role, token_hash, invited_by, expires_at, used_at, inserted_at"


class Invite(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    email: str
    role: str
    token_hash: str
    invited_by: str
    expires_at: str
    used_at: str | None
    inserted_at: str


def _invite(row: Any) -> Invite:
    return Invite(**{k: row[k] for k in Invite.__struct_fields__})


def create(conn: sqlite3.Connection, *, tenant_id: str, email: str, role: str, token_hash: str,
           invited_by: str, expires_at: str, now: str) -> Invite:
    row = conn.execute(
        f"""INSERT INTO tenant_invites (id, tenant_id, email, role, token_hash, invited_by,
                                        expires_at, used_at, inserted_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?) RETURNING {COLUMNS}""",
        (new_id(), tenant_id, email, role, token_hash, invited_by, expires_at, now),
    ).fetchone()
    return _invite(row)


def by_hash(conn: sqlite3.Connection, token_hash: str) -> Invite | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM tenant_invites WHERE token_hash = ?",
                       (token_hash,)).fetchone()
    return _invite(row) if row else None


def get(conn: sqlite3.Connection, invite_id: str) -> Invite | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM tenant_invites WHERE id = ?",
                       (invite_id,)).fetchone()
    return _invite(row) if row else None


def use(conn: sqlite3.Connection, invite_id: str, now: str) -> bool:
    """Mark the invitation used; False when it already was (the link works once)."""
    return conn.execute(
        "UPDATE tenant_invites SET used_at = ? WHERE id = ? AND used_at IS NULL",
        (now, invite_id)).rowcount == 1


def pending(conn: sqlite3.Connection, tenant_id: str | None, now: str) -> list[Invite]:
    """Unused, unexpired invitations (of one tenant, or all), oldest first."""
    sql = f"SELECT {COLUMNS} FROM tenant_invites WHERE used_at IS NULL AND expires_at > ?"
    args: tuple[Any, ...] = (now,)
    if tenant_id:
        sql += " AND tenant_id = ?"
        args += (tenant_id,)
    return [_invite(r) for r in conn.execute(sql + " ORDER BY inserted_at", args).fetchall()]


def delete(conn: sqlite3.Connection, invite_id: str) -> bool:
    return conn.execute("DELETE FROM tenant_invites WHERE id = ?", (invite_id,)).rowcount > 0


def delete_pending_for(conn: sqlite3.Connection, tenant_id: str, email: str) -> int:
    """A new invitation replaces the unused ones of the same address in the tenant."""
    return conn.execute(
        "DELETE FROM tenant_invites WHERE tenant_id = ? AND lower(email) = lower(?) "
        "AND used_at IS NULL", (tenant_id, email)).rowcount
