"""Admin users and tenant users: validation and audited changes (run on the writer thread).
Passwords arrive already hashed; snapshots never hold the hash (``audit.redact`` drops it)."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from store import audit, tenants, users

from .. import errors
from .security import MIN_PASSWORD

Actor = tuple[str, str]


def _snap(user: Any) -> dict[str, Any]:
    return msgspec.to_builtins(user)


def _check(email: str, name: str, password: str | None, role: str,
           roles: tuple[str, ...]) -> dict[str, list[str]]:
    errs: dict[str, list[str]] = {}
    if "@" not in email or len(email) < 3:
        errs["email"] = ["must be a valid e-mail address"]
    if not name:
        errs["name"] = ["can't be blank"]
    if password is not None and len(password) < MIN_PASSWORD:
        errs["password"] = [f"must be at least {MIN_PASSWORD} characters"]
    if role not in roles:
        errs["role"] = ["is invalid"]
    return errs


def create_admin_tx(conn: sqlite3.Connection, email: str, name: str, password: str,
                    password_hash: str, role: str, actor: Actor, now: str) -> users.AdminUser:
    email = email.strip().lower()
    errs = _check(email, name.strip(), password, role, users.ADMIN_ROLES)
    if not errs.get("email") and users.admin_email_taken(conn, email):
        errs["email"] = ["has already been taken"]
    if errs:
        raise errors.validation(errs)
    user = users.create_admin(conn, email=email, name=name.strip(), password_hash=password_hash,
                              role=role, now=now)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="create",
                 resource_type="admin_user", resource_id=user.id, now=now, after=_snap(user))
    return user


def update_admin_tx(conn: sqlite3.Connection, user_id: str, changes: dict[str, Any], actor: Actor,
                    now: str) -> users.AdminUser | None:
    before = users.get_admin(conn, user_id)
    if before is None:
        return None
    after = users.update_admin(conn, user_id, changes, now)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="update",
                 resource_type="admin_user", resource_id=user_id, now=now,
                 before=_snap(before), after=_snap(after))
    return after


def delete_admin_tx(conn: sqlite3.Connection, user_id: str, actor: Actor, now: str) -> bool:
    before = users.get_admin(conn, user_id)
    if before is None:
        return False
    users.delete_admin(conn, user_id)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="delete",
                 resource_type="admin_user", resource_id=user_id, now=now, before=_snap(before))
    return True


def create_tenant_user_tx(conn: sqlite3.Connection, tenant_id: str, email: str, name: str,
                          password: str, password_hash: str, role: str, actor: Actor,
                          now: str) -> users.TenantUser:
    email = email.strip().lower()
    errs = _check(email, name.strip(), password, role, users.TENANT_ROLES)
    if tenants.get(conn, tenant_id) is None:
        errs["tenant_id"] = ["does not exist"]
    elif not errs.get("email") and users.tenant_email_taken(conn, tenant_id, email):
        errs["email"] = ["has already been taken"]
    if errs:
        raise errors.validation(errs)
    user = users.create_tenant_user(conn, tenant_id=tenant_id, email=email, name=name.strip(),
                                    password_hash=password_hash, role=role, now=now)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="create",
                 resource_type="tenant_user", resource_id=user.id, tenant_id=tenant_id, now=now,
                 after=_snap(user))
    return user


def update_tenant_user_tx(conn: sqlite3.Connection, user_id: str, changes: dict[str, Any],
                          actor: Actor, now: str,
                          tenant_id: str | None = None) -> users.TenantUser | None:
    """``tenant_id`` set (the portal): only a user of that tenant can be changed."""
    before = users.get_tenant_user(conn, user_id)
    if before is None or (tenant_id and before.tenant_id != tenant_id):
        return None
    after = users.update_tenant_user(conn, user_id, changes, now)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="update",
                 resource_type="tenant_user", resource_id=user_id, tenant_id=before.tenant_id,
                 now=now, before=_snap(before), after=_snap(after))
    return after


def delete_tenant_user_tx(conn: sqlite3.Connection, user_id: str, actor: Actor, now: str,
                          tenant_id: str | None = None) -> bool:
    before = users.get_tenant_user(conn, user_id)
    if before is None or (tenant_id and before.tenant_id != tenant_id):
        return False
    users.delete_tenant_user(conn, user_id)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="delete",
                 resource_type="tenant_user", resource_id=user_id, tenant_id=before.tenant_id,
                 now=now, before=_snap(before))
    return True
