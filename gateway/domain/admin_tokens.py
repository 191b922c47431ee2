"""Admin API tokens (``Authorization: Bearer cva_…`` on the management API): create (the token
is returned once; only its hash is kept) and revoke. A token holds a role (built-in or custom)
and may be limited to tenants and channels (``tenant_scope``, ``channel_scope``) and to a time
(``expires_at``); its maker can give it no more than they hold (``authz.check_assignment``)."""

from __future__ import annotations

import sqlite3
from typing import Any

from store import admin_tokens
from store.models import AdminToken
from store.util import iso, parse_iso

from ..context import Gateway
from ..crypto import hint, new_admin_token, sha256_hex
from .authz import Principal, check_assignment
from .base import Actor, record, snap
from .errors import NotFound, ValidationFailed


def _expiry(value: Any, now: str, errs: dict[str, list[str]]) -> str | None:
    if value is None:
        return None
    try:
        when = parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        errs["expires_at"] = ["must be an ISO 8601 time with its offset"]
        return None
    if when <= parse_iso(now):
        errs["expires_at"] = ["must be in the future"]
        return None
    return iso(when)


def create_tx(conn: sqlite3.Connection, name: str, role: str, actor: tuple[str, str],
              now: str, token: str | None = None, *, tenant_scope: Any = None,
              channel_scope: Any = None, expires_at: Any = None,
              granter: Principal | None = None) -> tuple[AdminToken, str]:
    """``token``: the value to keep (``serve --dev`` derives its own); else a new random one.
    ``granter``: who makes it (None: the command line, unlimited)."""
    errs: dict[str, list[str]] = {}
    if not name or not name.strip():
        errs["name"] = ["can't be blank"]
    check_assignment(conn, role, tenant_scope, granter, errs, channel_scope)
    expiry = _expiry(expires_at, now, errs)
    if errs:
        raise ValidationFailed(errs)
    token = token or new_admin_token()
    row = admin_tokens.create(conn, name=name.strip(), token_hash=sha256_hex(token),
                              token_hint=hint(token), role=role, now=now, created_by=actor[1],
                              tenant_scope=tenant_scope, channel_scope=channel_scope,
                              expires_at=expiry)
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


async def create(gw: Gateway, actor: Actor, *, name: str, role: str, tenant_scope: Any = None,
                 channel_scope: Any = None, expires_at: Any = None,
                 granter: Principal | None = None) -> tuple[AdminToken, str]:
    return await gw.db.write(lambda conn: create_tx(
        conn, name, role, actor, gw.now_iso(), tenant_scope=tenant_scope,
        channel_scope=channel_scope, expires_at=expires_at, granter=granter))


async def revoke(gw: Gateway, actor: Actor, token_id: str) -> AdminToken:
    return await gw.db.write(revoke_tx, token_id, actor, gw.now_iso())
