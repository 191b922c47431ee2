"""People who sign in to the pages: admin users (the admin panel) and tenant users (the tenant
portal). Passwords are hashed (argon2, off the event loop) before the transaction; the audit
snapshots never hold the hash (``audit.redact`` drops it)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from store import tenants, users

from ..context import Gateway
from ..crypto import MIN_PASSWORD, hash_password
from . import authz
from .base import Actor, record, snap
from .errors import NotFound, ValidationFailed

ADMIN_ROLES = users.ADMIN_ROLES
TENANT_ROLES = users.TENANT_ROLES
STATUSES = ("active", "inactive")


def check(email: str, name: str, password: str | None, role: str,
          roles: tuple[str, ...] | None) -> dict[str, list[str]]:
    """``roles`` None: the role is checked elsewhere (an admin's: ``authz.check_assignment``)."""
    errs: dict[str, list[str]] = {}
    if "@" not in email or len(email) < 3:
        errs["email"] = ["must be a valid e-mail address"]
    if not name:
        errs["name"] = ["can't be blank"]
    if password is not None and len(password) < MIN_PASSWORD:
        errs["password"] = [f"must be at least {MIN_PASSWORD} characters"]
    if roles is not None and role not in roles:
        errs["role"] = ["is invalid"]
    return errs


def check_changes(changes: dict[str, Any], roles: tuple[str, ...] | None) -> dict[str, list[str]]:
    """The rules for the fields an update sets (name, role, status, password)."""
    errs: dict[str, list[str]] = {}
    if "name" in changes and (not isinstance(changes["name"], str) or not changes["name"].strip()):
        errs["name"] = ["can't be blank"]
    if "role" in changes and roles is not None and changes["role"] not in roles:
        errs["role"] = ["is invalid"]
    if "status" in changes and changes["status"] not in STATUSES:
        errs["status"] = ["is invalid"]
    if "password" in changes and (not isinstance(changes["password"], str)
                                  or len(changes["password"]) < MIN_PASSWORD):
        errs["password"] = [f"must be at least {MIN_PASSWORD} characters"]
    return errs


async def _hashed(password: str) -> str:
    # argon2 takes ~0.2 s: never on the event loop, never on the writer thread.
    return await asyncio.to_thread(hash_password, password) if password else ""


async def _prepared(changes: dict[str, Any], roles: tuple[str, ...] | None) -> dict[str, Any]:
    errs = check_changes(changes, roles)
    if errs:
        raise ValidationFailed(errs)
    out = {k: v for k, v in changes.items() if k != "password"}
    if "name" in out:
        out["name"] = out["name"].strip()
    if changes.get("password"):
        out["password_hash"] = await _hashed(changes["password"])
    return out


# -- admin users ------------------------------------------------------------------------------
def create_admin_tx(conn: sqlite3.Connection, email: str, name: str, password: str,
                    password_hash: str, role: str, actor: tuple[str, str],
                    now: str, tenant_scope: Any = None, granter: authz.Principal | None = None,
                    sso_subject: str | None = None) -> users.AdminUser:
    """``role``: a built-in or custom role; ``tenant_scope``: the tenants it applies to (None:
    every one); ``granter``: who gives it (None: the command line or the setup link)."""
    email = email.strip().lower()
    errs = check(email, name.strip(), password, role, None)
    authz.check_assignment(conn, role, tenant_scope, granter, errs)
    if not errs.get("email") and users.admin_email_taken(conn, email):
        errs["email"] = ["has already been taken"]
    if errs:
        raise ValidationFailed(errs)
    user = users.create_admin(conn, email=email, name=name.strip(), password_hash=password_hash,
                              role=role, now=now, tenant_scope=tenant_scope,
                              sso_subject=sso_subject)
    record(conn, actor, "create", "admin_user", user.id, now, after=snap(user))
    return user


def update_admin_tx(conn: sqlite3.Connection, user_id: str, changes: dict[str, Any],
                    actor: tuple[str, str], now: str,
                    granter: authz.Principal | None = None) -> users.AdminUser:
    before = users.get_admin(conn, user_id)
    if before is None:
        raise NotFound("admin user")
    if "role" in changes or "tenant_scope" in changes:
        errs: dict[str, list[str]] = {}
        authz.check_assignment(conn, changes.get("role", before.role),
                               changes.get("tenant_scope", before.tenant_scope), granter, errs)
        if errs:
            raise ValidationFailed(errs)
    authz.keeps_a_super_admin(conn, user_id, changes)
    after = users.update_admin(conn, user_id, changes, now)
    assert after is not None
    record(conn, actor, "update", "admin_user", user_id, now, before=snap(before), after=snap(after))
    return after


def delete_admin_tx(conn: sqlite3.Connection, user_id: str, actor: tuple[str, str],
                    now: str) -> users.AdminUser:
    before = users.get_admin(conn, user_id)
    if before is None:
        raise NotFound("admin user")
    authz.keeps_a_super_admin(conn, user_id, {"deleted": True})
    users.delete_admin(conn, user_id)
    record(conn, actor, "delete", "admin_user", user_id, now, before=snap(before))
    return before


async def create_admin(gw: Gateway, actor: Actor, *, email: str, name: str, password: str,
                       role: str, tenant_scope: Any = None,
                       granter: authz.Principal | None = None) -> users.AdminUser:
    return await gw.db.write(create_admin_tx, email, name, password, await _hashed(password),
                             role, actor, gw.now_iso(), tenant_scope, granter)


async def update_admin(gw: Gateway, actor: Actor, user_id: str, changes: dict[str, Any],
                       granter: authz.Principal | None = None) -> users.AdminUser:
    prepared = await _prepared(changes, None)
    return await gw.db.write(update_admin_tx, user_id, prepared, actor, gw.now_iso(), granter)


async def delete_admin(gw: Gateway, actor: Actor, user_id: str) -> None:
    await gw.db.write(delete_admin_tx, user_id, actor, gw.now_iso())


# A password hash no password matches (argon2 refuses it as a hash): a user made at single
# sign-on has no local password until someone sets one.
NO_PASSWORD = "!sso-only"


def sso_admin_tx(conn: sqlite3.Connection, subject: str, email: str, name: str, role: str,
                 tenant_scope: list[str] | None, now: str) -> users.AdminUser:
    """The admin user of an identity provider's subject (``issuer sub``), made on its first
    sign-in (just in time) and given, at every sign-in, the role and scope its groups map to
    (the identity provider decides them). An e-mail already held by a local account is not
    taken over (422)."""
    actor = ("system", "sso")
    user = users.admin_by_sso(conn, subject)
    email = email.strip().lower()
    if user is None:
        if users.admin_email_taken(conn, email):
            raise ValidationFailed({"email": ["belongs to an account that does not sign in "
                                              "with single sign-on"]})
        errs = check(email, name.strip() or email, None, role, None)
        authz.check_assignment(conn, role, tenant_scope, None, errs)
        if errs:
            raise ValidationFailed(errs)
        user = users.create_admin(conn, email=email, name=name.strip() or email,
                                  password_hash=NO_PASSWORD, role=role, now=now,
                                  tenant_scope=tenant_scope, sso_subject=subject)
        record(conn, actor, "create", "admin_user", user.id, now, after=snap(user))
        return user
    if user.role != role or user.tenant_scope != tenant_scope:
        errs = {}
        authz.check_assignment(conn, role, tenant_scope, None, errs)
        if errs:
            raise ValidationFailed(errs)
        after = users.update_admin(conn, user.id, {"role": role, "tenant_scope": tenant_scope},
                                   now)
        assert after is not None
        record(conn, actor, "update", "admin_user", user.id, now, before=snap(user),
               after=snap(after))
        return after
    return user


async def sso_admin(gw: Gateway, *, subject: str, email: str, name: str, role: str,
                    tenant_scope: list[str] | None) -> users.AdminUser:
    return await gw.db.write(sso_admin_tx, subject, email, name, role, tenant_scope,
                             gw.now_iso())


# -- tenant users -----------------------------------------------------------------------------
def create_tenant_user_tx(conn: sqlite3.Connection, tenant_id: str, email: str, name: str,
                          password: str, password_hash: str, role: str, actor: tuple[str, str],
                          now: str) -> users.TenantUser:
    email = email.strip().lower()
    errs = check(email, name.strip(), password, role, TENANT_ROLES)
    if tenants.get(conn, tenant_id) is None:
        errs["tenant_id"] = ["does not exist"]
    elif not errs.get("email") and users.tenant_email_taken(conn, tenant_id, email):
        errs["email"] = ["has already been taken"]
    if errs:
        raise ValidationFailed(errs)
    user = users.create_tenant_user(conn, tenant_id=tenant_id, email=email, name=name.strip(),
                                    password_hash=password_hash, role=role, now=now)
    record(conn, actor, "create", "tenant_user", user.id, now, tenant_id=tenant_id,
           after=snap(user))
    return user


def _tenant_user(conn: sqlite3.Connection, user_id: str, tenant_id: str | None) -> users.TenantUser:
    user = users.get_tenant_user(conn, user_id)
    if user is None or (tenant_id and user.tenant_id != tenant_id):
        raise NotFound("user")
    return user


def update_tenant_user_tx(conn: sqlite3.Connection, user_id: str, changes: dict[str, Any],
                          actor: tuple[str, str], now: str,
                          tenant_id: str | None = None) -> users.TenantUser:
    """``tenant_id`` set (the portal): only a user of that tenant can be changed."""
    before = _tenant_user(conn, user_id, tenant_id)
    after = users.update_tenant_user(conn, user_id, changes, now)
    assert after is not None
    record(conn, actor, "update", "tenant_user", user_id, now, tenant_id=before.tenant_id,
           before=snap(before), after=snap(after))
    return after


def delete_tenant_user_tx(conn: sqlite3.Connection, user_id: str, actor: tuple[str, str],
                          now: str, tenant_id: str | None = None) -> users.TenantUser:
    before = _tenant_user(conn, user_id, tenant_id)
    users.delete_tenant_user(conn, user_id)
    record(conn, actor, "delete", "tenant_user", user_id, now, tenant_id=before.tenant_id,
           before=snap(before))
    return before


async def create_tenant_user(gw: Gateway, actor: Actor, *, tenant_id: str, email: str, name: str,
                             password: str, role: str) -> users.TenantUser:
    return await gw.db.write(create_tenant_user_tx, tenant_id, email, name, password,
                             await _hashed(password), role, actor, gw.now_iso())


async def update_tenant_user(gw: Gateway, actor: Actor, user_id: str, changes: dict[str, Any], *,
                             tenant_id: str | None = None) -> users.TenantUser:
    prepared = await _prepared(changes, TENANT_ROLES)
    return await gw.db.write(update_tenant_user_tx, user_id, prepared, actor, gw.now_iso(),
                             tenant_id)


async def delete_tenant_user(gw: Gateway, actor: Actor, user_id: str, *,
                             tenant_id: str | None = None) -> None:
    await gw.db.write(delete_tenant_user_tx, user_id, actor, gw.now_iso(), tenant_id)
