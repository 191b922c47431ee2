"""SLA tiers (issue 21): named plans with per-tenant limits and a delivery priority; a tenant is
on one tier or on none (the gateway-wide settings). This is the data model and its management;
the limits are applied by gateway/tierlimits.py, gateway/ratelimit.py, the channel rules and the
delivery queue's claim (docs/admin.md#sla-tiers)."""

from __future__ import annotations

import sqlite3
from typing import Any

from store import tenants, tiers
from store.tiers import LIMITS, Tier

from .. import tierlimits
from ..context import Gateway
from .base import Actor, record, snap
from .errors import Conflict, NotFound, ValidationFailed

NAME_MAX = 64
PRIORITY_MAX = 1000
LIMIT_MAX = 2**53  # what a JSON number carries exactly


def check(fields: dict[str, Any], *, creating: bool) -> dict[str, list[str]]:
    """The field rules; on update only the fields given are checked."""
    errs: dict[str, list[str]] = {}
    if creating or "name" in fields:
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            errs["name"] = ["can't be blank"]
        elif len(name.strip()) > NAME_MAX or not name.strip().isprintable():
            errs["name"] = [f"must be at most {NAME_MAX} printable characters"]
    if "priority" in fields and not 0 <= fields["priority"] <= PRIORITY_MAX:
        errs["priority"] = [f"must be from 0 to {PRIORITY_MAX}"]
    for limit in LIMITS:
        value = fields.get(limit)
        if value is not None and not 0 <= value <= LIMIT_MAX:
            errs[limit] = ["must be greater than or equal to 0" if value < 0 else "is too large"]
    rate = fields.get("target_success_rate")
    if rate is not None and not 0 <= rate <= 1:
        errs["target_success_rate"] = ["must be from 0 to 1"]
    p90 = fields.get("target_sent_p90_ms")
    if p90 is not None and not 0 <= p90 <= LIMIT_MAX:
        errs["target_sent_p90_ms"] = ["must be greater than or equal to 0" if p90 < 0
                                      else "is too large"]
    if "description" in fields and len(fields["description"]) > 500:
        errs["description"] = ["must be at most 500 characters"]
    return errs


def _taken(conn: sqlite3.Connection, name: str, tier_id: str | None) -> bool:
    other = tiers.by_name(conn, name)
    return other is not None and other.id != tier_id


def create_tx(conn: sqlite3.Connection, fields: dict[str, Any], actor: tuple[str, str],
              now: str) -> Tier:
    errs = check(fields, creating=True)
    if not errs and _taken(conn, fields["name"].strip(), None):
        errs["name"] = ["has already been taken"]
    if errs:
        raise ValidationFailed(errs)
    tier = tiers.create(conn, {**fields, "name": fields["name"].strip()}, now)
    record(conn, actor, "create", "sla_tier", tier.id, now, after=snap(tier))
    return tier


def update_tx(conn: sqlite3.Connection, tier_id: str, changes: dict[str, Any],
              actor: tuple[str, str], now: str) -> Tier:
    before = tiers.get(conn, tier_id)
    if before is None:
        raise NotFound("tier")
    errs = check(changes, creating=False)
    if "name" in changes and not errs:
        changes["name"] = changes["name"].strip()
        if _taken(conn, changes["name"], tier_id):
            errs["name"] = ["has already been taken"]
    if errs:
        raise ValidationFailed(errs)
    after = tiers.update(conn, tier_id, changes, now)
    assert after is not None
    record(conn, actor, "update", "sla_tier", tier_id, now, before=snap(before), after=snap(after))
    return after


def delete_tx(conn: sqlite3.Connection, tier_id: str, actor: tuple[str, str], now: str) -> None:
    before = tiers.get(conn, tier_id)
    if before is None:
        raise NotFound("tier")
    used = tiers.tenants_on(conn, tier_id)
    if used:
        raise Conflict(f"{used} tenant(s) are on this tier: move them first")
    tiers.delete(conn, tier_id)
    record(conn, actor, "delete", "sla_tier", tier_id, now, before=snap(before))


def assign_tx(conn: sqlite3.Connection, tenant_id: str, tier_name: str | None,
              actor: tuple[str, str], now: str) -> Tier | None:
    if tenants.get(conn, tenant_id) is None:
        raise NotFound("tenant")
    tier = None
    if tier_name is not None:
        tier = tiers.by_name(conn, tier_name.strip()) if isinstance(tier_name, str) else None
        if tier is None:
            raise ValidationFailed({"tier": ["does not exist"]})
    before = tiers.of_tenant(conn, tenant_id)
    tiers.assign(conn, tenant_id, tier.id if tier else None, now)
    record(conn, actor, "set_tier", "tenant", tenant_id, now, tenant_id=tenant_id,
           before={"tier": before.name if before else None},
           after={"tier": tier.name if tier else None})
    return tier


# -- operations -------------------------------------------------------------------------------
# Each change forgets the tiers this process has cached (gateway/tierlimits.py): it applies
# here at once, in the other worker processes within a few seconds.
async def create(gw: Gateway, actor: Actor, fields: dict[str, Any]) -> Tier:
    return await gw.db.write(create_tx, fields, actor, gw.now_iso())


async def update(gw: Gateway, actor: Actor, tier_id: str, changes: dict[str, Any]) -> Tier:
    tier: Tier = await gw.db.write(update_tx, tier_id, changes, actor, gw.now_iso())
    tierlimits.CACHE.forget()
    return tier


async def delete(gw: Gateway, actor: Actor, tier_id: str) -> None:
    await gw.db.write(delete_tx, tier_id, actor, gw.now_iso())
    tierlimits.CACHE.forget()


async def assign(gw: Gateway, actor: Actor, tenant_id: str, tier_name: str | None) -> Tier | None:
    tier: Tier | None = await gw.db.write(assign_tx, tenant_id, tier_name, actor, gw.now_iso())
    tierlimits.CACHE.forget()
    return tier
