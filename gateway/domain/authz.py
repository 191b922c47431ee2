"""Who may do what, on which tenants (issue 25): the one authorisation decision every management
route and admin or portal page goes through (``decide``), the built-in roles as predefined sets
of permissions, custom roles (``roles``: named sets of permissions super admins make), and the
audit entry of every refusal.

A **permission** is an action on a resource family, ``"channels:write"``. A **role** is a named
set of permissions: the built-in ones below (unchanged behaviour: ``super_admin`` may do
everything, ``admin`` everything but change admin users, tokens and roles, ``viewer`` only
read), or a custom role. A **principal** holds one role and a **scope**: the tenants its role
applies to (None: every tenant) and, for an API token, the channels (None: every channel of its
tenants). Outside its scope a thing answers as if it did not exist (404, ``NotFound``), so a
scoped principal cannot learn that another tenant's id exists; a permission its role lacks is
refused (403, ``Forbidden``). Both are recorded in the audit log (action ``deny``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import msgspec

from store import roles as role_rows
from store import tenants, users

from ..context import Gateway
from .base import Actor, record, snap
from .errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed

# -- permissions ------------------------------------------------------------------------------
FAMILIES: dict[str, tuple[str, ...]] = {
    "tenants": ("read", "write", "delete"),
    "channels": ("read", "status", "write", "delete"),  # status: enable, disable, test
    "conversations": ("read", "write"),
    "deliveries": ("read", "retry"),
    "routing_rules": ("read", "write", "delete"),
    "users": ("read", "write", "delete"),      # a tenant's users (the portal's people)
    "health": ("read",),                       # channel health and health alerts
    "audit": ("read",),
    "analytics": ("read",),
    "admins": ("read", "write", "delete"),     # admin users (the panel's people)
    "tokens": ("read", "write", "delete"),     # admin API tokens
    "roles": ("read", "write", "delete"),
    "settings": ("read", "write", "delete"),   # SLA tiers, TLS: the installation's settings
}
PERMISSIONS: frozenset[str] = frozenset(f"{f}:{a}" for f, actions in FAMILIES.items()
                                        for a in actions)
# Families that belong to no tenant: a tenant-scoped principal never reaches them.
GLOBAL_FAMILIES = frozenset({"admins", "tokens", "roles", "settings"})
# Families whose things hang under a channel (a channel-scoped token reaches these only).
CHANNEL_FAMILIES = frozenset({"channels", "conversations", "deliveries"})

READS = frozenset(p for p in PERMISSIONS if p.endswith(":read"))
_MANAGE_PEOPLE = frozenset(f"{f}:{a}" for f in ("admins", "tokens", "roles")
                           for a in ("write", "delete"))
BUILTIN: dict[str, frozenset[str]] = {
    "super_admin": PERMISSIONS,
    "admin": PERMISSIONS - _MANAGE_PEOPLE,
    "viewer": READS,
}
# The tenant portal's roles (always scoped to the user's own tenant). Owners and admins manage
# the tenant's users and edit its channels; members enable and disable channels and rules,
# retry deliveries and send test events; viewers only read.
_PORTAL_READ = frozenset({"tenants:read", "channels:read", "conversations:read",
                          "deliveries:read", "routing_rules:read", "users:read", "health:read",
                          "analytics:read"})
_PORTAL_MEMBER = _PORTAL_READ | {"channels:status", "conversations:write", "deliveries:retry",
                                 "routing_rules:write", "routing_rules:delete"}
PORTAL: dict[str, frozenset[str]] = {
    "owner": _PORTAL_MEMBER | {"users:write", "users:delete", "channels:write"},
    "admin": _PORTAL_MEMBER | {"users:write", "users:delete", "channels:write"},
    "member": _PORTAL_MEMBER,
    "viewer": _PORTAL_READ,
}
# Marks a route any signed-in person may use (their own account, logging out).
SELF = "self"


class Principal(msgspec.Struct, frozen=True):
    """Who asks, with what their role grants and where."""

    actor: Actor
    role: str
    permissions: frozenset[str]
    tenants: frozenset[str] | None = None   # None: every tenant
    channels: frozenset[str] | None = None  # None: every channel of its tenants

    @property
    def scoped(self) -> bool:
        return self.tenants is not None or self.channels is not None

    def can(self, permission: str) -> bool:
        return permission == SELF or permission in self.permissions

    def sees_tenant(self, tenant_id: str | None) -> bool:
        return self.tenants is None or (tenant_id is not None and tenant_id in self.tenants)


def principal(actor: tuple[str, str], role: str, permissions: Iterable[str],
              tenants: Iterable[str] | None = None,
              channels: Iterable[str] | None = None) -> Principal:
    return Principal(actor=Actor(*actor), role=role, permissions=frozenset(permissions),
                     tenants=None if tenants is None else frozenset(tenants),
                     channels=None if channels is None else frozenset(channels))


def role_permissions(conn: sqlite3.Connection, role: str) -> frozenset[str]:
    """The permissions of a role by name: built-in, else custom (none if it is neither)."""
    if role in BUILTIN:
        return BUILTIN[role]
    row = role_rows.by_name(conn, role)
    return frozenset(row.permissions) & PERMISSIONS if row else frozenset()


def family(permission: str) -> str:
    return permission.split(":", 1)[0]


# -- the decision -----------------------------------------------------------------------------
def decide(who: Principal, permission: str, *, tenant_id: str | None = None,
           channel_id: str | None = None, whole: bool = False) -> DomainError | None:
    """None when ``who`` may do ``permission``, else the refusal (not raised).

    ``tenant_id``/``channel_id``: the thing's owners, when it is one thing; ``whole``: the act
    is not on one tenant's thing (making a tenant, an installation-wide list or setting), which
    a scoped principal may not do. The permission is checked first, so a refusal for a missing
    permission is the same whether the thing exists or not; then the scope, whose refusal is
    the answer for a thing that does not exist.
    """
    if not who.can(permission):
        if not any(not p.endswith(":read") for p in who.permissions):
            return Forbidden("this token is read-only" if who.actor[0] == "admin_token"
                             else "viewers cannot change anything", "read_only")
        return Forbidden(f"the role {who.role} does not grant {permission}", "forbidden_role")
    if permission == SELF or not who.scoped:
        return None
    fam = family(permission)
    if fam in GLOBAL_FAMILIES or whole:
        return Forbidden(f"{permission} is not within a tenant: a tenant-scoped role cannot "
                         "use it", "out_of_scope")
    if tenant_id is not None and not who.sees_tenant(tenant_id):
        return NotFound()
    if who.channels is not None and (tenant_id is not None or channel_id is not None):
        if fam not in CHANNEL_FAMILIES or channel_id not in who.channels:
            return NotFound()
    return None


def tenant_filter(who: Principal, requested: str | None) -> frozenset[str] | None:
    """The tenants a list may show: None for no limit; an empty set shows nothing (a tenant
    outside the scope lists as one that does not exist: empty)."""
    if who.channels is not None and who.tenants is None:
        return None  # limited by channel instead (``channel_filter``)
    if who.tenants is None:
        return None if requested is None else frozenset({requested})
    if requested is None:
        return who.tenants
    return frozenset({requested}) & who.tenants


def channel_filter(who: Principal, requested: str | None = None) -> frozenset[str] | None:
    if who.channels is None:
        return None if requested is None else frozenset({requested})
    if requested is None:
        return who.channels
    return frozenset({requested}) & who.channels


def refusal_tx(conn: sqlite3.Connection, who: Principal, permission: str, resource_id: str,
               tenant_id: str | None, reason: str, now: str) -> None:
    """The audit entry of a refusal: action ``deny``, the permission asked and why."""
    known = tenant_id if tenant_id and tenants.get(conn, tenant_id) is not None else None
    record(conn, who.actor, "deny", family(permission), resource_id or "-", now,
           tenant_id=known, after={"permission": permission, "reason": reason,
                                   "tenant_id": tenant_id})


async def authorize(gw: Gateway, who: Principal, permission: str, *, resource_id: str = "",
                    tenant_id: str | None = None, channel_id: str | None = None,
                    whole: bool = False) -> None:
    """``decide``, and when it refuses: audit the refusal and raise it."""
    refused = decide(who, permission, tenant_id=tenant_id, channel_id=channel_id, whole=whole)
    if refused is None:
        return
    reason = getattr(refused, "code", "not_found")
    await gw.db.write(refusal_tx, who, permission, resource_id, tenant_id, reason, gw.now_iso())
    raise refused


# Where a thing of each kind lives: its tenant, and the channel it hangs under.
_OWNERS = {
    "tenants": "SELECT id, NULL FROM tenants WHERE id = ?",
    "channels": "SELECT tenant_id, id FROM channels WHERE id = ?",
    "conversations": "SELECT tenant_id, channel_id FROM conversations WHERE id = ?",
    "deliveries": "SELECT tenant_id, channel_id FROM deliveries WHERE id = ?",
    "routing_rules": "SELECT tenant_id, NULL FROM routing_rules WHERE id = ?",
    "users": "SELECT tenant_id, NULL FROM tenant_users WHERE id = ?",
    "invites": "SELECT tenant_id, NULL FROM tenant_invites WHERE id = ?",
}


def owner(conn: sqlite3.Connection, kind: str, thing_id: str) -> tuple[str, str | None] | None:
    """The (tenant, channel) a thing belongs to; None if there is no such thing."""
    row = conn.execute(_OWNERS[kind], (thing_id,)).fetchone()
    return (row[0], row[1]) if row else None


async def authorize_thing(gw: Gateway, who: Principal, permission: str, kind: str,
                          thing_id: str) -> None:
    """``authorize`` on one existing thing (its tenant and channel read first). A thing that
    does not exist passes: the operation answers 404 for it as it always did, exactly as the
    scope's refusal does."""
    if not who.can(permission) or not who.scoped or kind not in _OWNERS:
        await authorize(gw, who, permission, resource_id=thing_id)
        return
    found = await gw.db.read(owner, kind, thing_id)
    if found is None:
        return
    await authorize(gw, who, permission, resource_id=thing_id, tenant_id=found[0],
                    channel_id=found[1])


# -- custom roles -----------------------------------------------------------------------------
class RoleView(msgspec.Struct, kw_only=True):
    """A role as the API and the pages show it (built-in ones have no id)."""

    name: str
    permissions: list[str]
    builtin: bool
    description: str = ""
    id: str | None = None
    inserted_at: str | None = None
    updated_at: str | None = None


BUILTIN_DESCRIPTIONS = {
    "super_admin": "Everything, including admin users, API tokens and roles",
    "admin": "Everything but admin users, API tokens and roles",
    "viewer": "Reads everything, changes nothing",
}


def all_roles(conn: sqlite3.Connection) -> list[RoleView]:
    out = [RoleView(name=n, permissions=sorted(p), builtin=True,
                    description=BUILTIN_DESCRIPTIONS[n]) for n, p in BUILTIN.items()]
    out += [RoleView(name=r.name, permissions=sorted(r.permissions), builtin=False,
                     description=r.description, id=r.id, inserted_at=r.inserted_at,
                     updated_at=r.updated_at) for r in role_rows.list_all(conn)]
    return out


def role_names(conn: sqlite3.Connection) -> tuple[str, ...]:
    return tuple(BUILTIN) + tuple(r.name for r in role_rows.list_all(conn))


def _check_permissions(value: Any, errs: dict[str, list[str]]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        errs["permissions"] = ["must be a list of permissions"]
        return []
    unknown = sorted(set(value) - PERMISSIONS)
    if unknown:
        errs["permissions"] = [f"unknown permission: {', '.join(unknown)}"]
    elif not value:
        errs["permissions"] = ["can't be empty"]
    return sorted(set(value))


def _no_escalation(granter: Principal | None, permissions: Iterable[str],
                   errs: dict[str, list[str]], field: str = "permissions") -> None:
    """Nobody grants what they do not hold themselves."""
    if granter is None:
        return
    beyond = sorted(set(permissions) - granter.permissions)
    if beyond:
        errs[field] = [f"grants what you do not hold: {', '.join(beyond)}"]


def create_role_tx(conn: sqlite3.Connection, name: str, description: str, permissions: Any,
                   granter: Principal | None, actor: tuple[str, str], now: str) -> RoleView:
    errs: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errs["name"] = ["can't be blank"]
    elif name in BUILTIN or name in PORTAL:
        errs["name"] = ["is a built-in role"]
    elif role_rows.by_name(conn, name) is not None:
        errs["name"] = ["has already been taken"]
    perms = _check_permissions(permissions, errs)
    if "permissions" not in errs:
        _no_escalation(granter, perms, errs)
    if errs:
        raise ValidationFailed(errs)
    row = role_rows.create(conn, name=name, description=(description or "").strip(),
                           permissions=perms, now=now)
    record(conn, actor, "create", "role", row.id, now, after=snap(row))
    return _view(row)


def _view(row: role_rows.Role) -> RoleView:
    return RoleView(name=row.name, permissions=row.permissions, builtin=False,
                    description=row.description, id=row.id, inserted_at=row.inserted_at,
                    updated_at=row.updated_at)


def update_role_tx(conn: sqlite3.Connection, role_id: str, changes: dict[str, Any],
                   granter: Principal | None, actor: tuple[str, str], now: str) -> RoleView:
    before = role_rows.get(conn, role_id)
    if before is None:
        raise NotFound("role")
    errs: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    if "name" in changes and changes["name"] != before.name:
        errs["name"] = ["cannot be changed (users and tokens hold the role by name)"]
    if "permissions" in changes:
        out["permissions"] = _check_permissions(changes["permissions"], errs)
        if "permissions" not in errs:
            _no_escalation(granter, out["permissions"], errs)
    if "description" in changes:
        out["description"] = str(changes["description"] or "").strip()
    if errs:
        raise ValidationFailed(errs)
    after = role_rows.update(conn, role_id, out, now)
    assert after is not None
    record(conn, actor, "update", "role", role_id, now, before=snap(before), after=snap(after))
    return _view(after)


def delete_role_tx(conn: sqlite3.Connection, role_id: str, actor: tuple[str, str],
                   now: str) -> None:
    before = role_rows.get(conn, role_id)
    if before is None:
        raise NotFound("role")
    if role_rows.holders(conn, before.name):
        raise Conflict(f"the role {before.name} is held by admin users or API tokens: give "
                       "them another role first", "role_in_use")
    role_rows.delete(conn, role_id)
    record(conn, actor, "delete", "role", role_id, now, before=snap(before))


async def create_role(gw: Gateway, actor: Actor, *, name: str, description: str,
                      permissions: Any, granter: Principal | None = None) -> RoleView:
    return await gw.db.write(create_role_tx, name, description, permissions, granter, actor,
                             gw.now_iso())


async def update_role(gw: Gateway, actor: Actor, role_id: str, changes: dict[str, Any],
                      granter: Principal | None = None) -> RoleView:
    return await gw.db.write(update_role_tx, role_id, changes, granter, actor, gw.now_iso())


async def delete_role(gw: Gateway, actor: Actor, role_id: str) -> None:
    await gw.db.write(delete_role_tx, role_id, actor, gw.now_iso())


# -- assignments: the rules users and tokens share ------------------------------------------------
def check_assignment(conn: sqlite3.Connection, role: Any, tenant_scope: Any,
                     granter: Principal | None, errs: dict[str, list[str]],
                     channel_scope: Any = None) -> None:
    """A role and a scope given to a user or a token: the role exists, the scope names tenants
    (and channels of those tenants) that exist, and the granter holds all of it."""
    if not isinstance(role, str) or (role not in BUILTIN and role_rows.by_name(conn, role) is None):
        errs["role"] = ["is invalid"]
    else:
        _no_escalation(granter, role_permissions(conn, role), errs, "role")
    tenants_ok = _check_ids(conn, "tenants", tenant_scope, "tenant_scope", errs)
    if tenants_ok and granter is not None and granter.tenants is not None and (
            tenant_scope is None or not set(tenant_scope) <= granter.tenants):
        errs["tenant_scope"] = ["reaches tenants outside your own scope"]
    if channel_scope is not None and _check_ids(conn, "channels", channel_scope,
                                                "channel_scope", errs):
        if tenant_scope is None:
            errs["channel_scope"] = ["needs a tenant_scope naming the channels' tenants"]
        else:
            foreign = [c for c in channel_scope if conn.execute(
                "SELECT tenant_id FROM channels WHERE id = ?", (c,)).fetchone()[0]
                not in set(tenant_scope)]
            if foreign:
                errs["channel_scope"] = ["names a channel of a tenant outside tenant_scope"]
        if granter is not None and granter.channels is not None and not set(
                channel_scope) <= granter.channels:
            errs["channel_scope"] = ["reaches channels outside your own scope"]
    elif channel_scope is None and granter is not None and granter.channels is not None:
        errs["channel_scope"] = ["reaches channels outside your own scope"]


def _check_ids(conn: sqlite3.Connection, table: str, ids: Any, field: str,
               errs: dict[str, list[str]]) -> bool:
    if ids is None:
        return True
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        errs[field] = ["must be a non-empty list of ids (or null for every one)"]
        return False
    missing = [i for i in ids if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?",
                                              (i,)).fetchone() is None]
    if missing:
        errs[field] = [f"names {table} that do not exist"]
        return False
    return True


def keeps_a_super_admin(conn: sqlite3.Connection, user_id: str, after: dict[str, Any]) -> None:
    """Refuse a change that leaves no active, unscoped super admin (no one could manage admin
    users, tokens and roles any more)."""
    before = users.get_admin(conn, user_id)
    if before is None or before.role != "super_admin" or before.status != "active" \
            or before.tenant_scope is not None:
        return
    stays = (after.get("role", before.role) == "super_admin"
             and after.get("status", before.status) == "active"
             and after.get("tenant_scope", before.tenant_scope) is None
             and not after.get("deleted"))
    if not stays and users.count_active_super_admins(conn, excluding=user_id) == 0:
        raise Conflict("this is the last active super admin: make another one first",
                       "last_super_admin")


def role_snapshot(view: RoleView) -> dict[str, Any]:
    return msgspec.to_builtins(view)
