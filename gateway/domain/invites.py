"""Tenant users are invited by link (issue 23): an admin of the gateway, or a tenant's owner or
admin, names an e-mail and a role; the link (shown once) lets that person choose their own name
and password, once, within ``INVITE_DAYS``. Only the SHA-256 of the link's token is stored
(the token has 256 random bits, so a fast hash is enough and a database copy opens nothing);
an unknown, used and expired link are refused alike."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
from datetime import timedelta

from store import invites, tenants, users
from store.util import iso, parse_iso

from ..context import Gateway
from ..crypto import MIN_PASSWORD, hash_password
from . import users as user_ops
from .base import Actor, record, snap
from .errors import NotFound, ValidationFailed

INVITE_DAYS = 7


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _shown(invite: invites.Invite) -> dict[str, object]:
    out = snap(invite)
    out.pop("token_hash", None)
    return out


def invite_tx(conn: sqlite3.Connection, tenant_id: str, email: str, role: str,
              roles: tuple[str, ...], digest: str, expires_at: str, actor: tuple[str, str],
              now: str) -> invites.Invite:
    email = email.strip().lower()
    errs = user_ops.check(email, "-", None, role, roles)
    if tenants.get(conn, tenant_id) is None:
        errs["tenant_id"] = ["does not exist"]
    elif not errs.get("email") and users.tenant_email_taken(conn, tenant_id, email):
        errs["email"] = ["already has an account in this tenant"]
    if errs:
        raise ValidationFailed(errs)
    invites.delete_pending_for(conn, tenant_id, email)  # the newest link is the one that works
    invite = invites.create(conn, tenant_id=tenant_id, email=email, role=role, token_hash=digest,
                            invited_by=f"{actor[0]}:{actor[1]}", expires_at=expires_at, now=now)
    record(conn, actor, "invite", "tenant_user", invite.id, now, tenant_id=tenant_id,
           after=_shown(invite))
    return invite


async def invite(gw: Gateway, actor: Actor, *, tenant_id: str, email: str, role: str,
                 roles: tuple[str, ...] = user_ops.TENANT_ROLES) -> tuple[invites.Invite, str]:
    """A new invitation and its token (for the link; never stored, never shown again)."""
    token = secrets.token_urlsafe(32)
    now = gw.now_iso()
    expires = iso(parse_iso(now) + timedelta(days=INVITE_DAYS))
    made = await gw.db.write(invite_tx, tenant_id, email, role, roles, token_hash(token), expires,
                             actor, now)
    return made, token


def valid(conn: sqlite3.Connection, token: str, now: str) -> invites.Invite | None:
    """The invitation of this link while it can be used (not used, not expired)."""
    found = invites.by_hash(conn, token_hash(token))
    if found is None or found.used_at is not None or found.expires_at <= now:
        return None
    return found


def accept_tx(conn: sqlite3.Connection, token: str, name: str, password: str,
              password_hash: str, now: str) -> users.TenantUser:
    found = valid(conn, token, now)
    if found is None:
        raise NotFound("invitation")
    if users.tenant_email_taken(conn, found.tenant_id, found.email):
        raise ValidationFailed({"email": ["already has an account: sign in instead"]})
    if not invites.use(conn, found.id, now):  # the link works once
        raise NotFound("invitation")
    user = users.create_tenant_user(conn, tenant_id=found.tenant_id, email=found.email,
                                    name=name.strip(), password_hash=password_hash,
                                    role=found.role, now=now)
    record(conn, ("tenant_user", found.email), "create", "tenant_user", user.id, now,
           tenant_id=found.tenant_id, after={**snap(user), "invite_id": found.id})
    return user


async def accept(gw: Gateway, token: str, *, name: str, password: str) -> users.TenantUser:
    """The invited person's account, with the name and password they chose. Raises NotFound
    for a link that is unknown, used or expired, ValidationFailed for a bad name or password."""
    errs: dict[str, list[str]] = {}
    if not name.strip():
        errs["name"] = ["can't be blank"]
    if len(password) < MIN_PASSWORD:
        errs["password"] = [f"must be at least {MIN_PASSWORD} characters"]
    if errs:
        raise ValidationFailed(errs)
    if await gw.db.read(valid, token, gw.now_iso()) is None:  # no argon2 for a dead link
        raise NotFound("invitation")
    digest = await asyncio.to_thread(hash_password, password)  # argon2: off the loop
    return await gw.db.write(accept_tx, token, name, password, digest, gw.now_iso())


def revoke_tx(conn: sqlite3.Connection, invite_id: str, actor: tuple[str, str], now: str,
              tenant_id: str | None = None) -> invites.Invite:
    """``tenant_id`` set (the portal): only an invitation of that tenant."""
    found = invites.get(conn, invite_id)
    if found is None or (tenant_id and found.tenant_id != tenant_id):
        raise NotFound("invitation")
    invites.delete(conn, invite_id)
    record(conn, actor, "revoke_invite", "tenant_user", invite_id, now,
           tenant_id=found.tenant_id, before=_shown(found))
    return found


async def revoke(gw: Gateway, actor: Actor, invite_id: str, *,
                 tenant_id: str | None = None) -> None:
    await gw.db.write(revoke_tx, invite_id, actor, gw.now_iso(), tenant_id)


def pending(conn: sqlite3.Connection, tenant_id: str | None, now: str) -> list[invites.Invite]:
    return invites.pending(conn, tenant_id, now)
