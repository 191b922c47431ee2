"""Admin API tokens (``Authorization: Bearer cva_…`` on the management API): create (the token
is returned once; only its hash is kept) and revoke."""

from __future__ import annotations

import sqlite3

from store import admin_tokens, users
from store.models import AdminToken

from ..context import Gateway
from ..crypto import hint, new_admin_token, sha256_hex
from .base import Actor, record, snap
from .errors import NotFound, ValidationFailed

ROLES = users.ADMIN_ROLES  # an admin token has an admin user's roles


def create_tx(conn: sqlite3.Connection, name: str, role: str, actor: tuple[str, str],
              now: str, token: str | None = None) -> tuple[AdminToken, str]:
    """``token``: the value to keep (``serve --dev`` derives its own); else a new random one."""
    errs: dict[str, list[str]] = {}
    if not name or not name.strip():
        errs["name"] = ["can't be blank"]
    if role not in ROLES:
        errs["role"] = ["is invalid"]
    if errs:
        raise ValidationFailed(errs)
    token = token or new_admin_token()
    row = admin_tokens.create(conn, name=name.strip(), token_hash=sha256_hex(token),
                              token_hint=hint(token), role=role, now=now, created_by=actor[1])
    record(conn, actor, "create", "admin_token", row.id, now, after=snap(row))
    return row, token


def revoke_tx(conn: sqlite3.Connection, token_id: str, actor: tuple[str, str], now: str) -> AdminToken:
    """Revoke a token that is not revoked yet; audited with the token before and after."""
    before = admin_tokens.get(conn, token_id)
    if before is None or not admin_tokens.revoke(conn, token_id, now):
        raise NotFound("admin token")
    after = admin_tokens.get(conn, token_id)
    assert after is not None
    record(conn, actor, "revoke", "admin_token", token_id, now, before=snap(before),
           after=snap(after))
    return after


async def create(gw: Gateway, actor: Actor, *, name: str, role: str) -> tuple[AdminToken, str]:
    return await gw.db.write(create_tx, name, role, actor, gw.now_iso())


async def revoke(gw: Gateway, actor: Actor, token_id: str) -> AdminToken:
    return await gw.db.write(revoke_tx, token_id, actor, gw.now_iso())
