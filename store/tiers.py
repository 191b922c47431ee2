"""SLA tiers: named plans with per-tenant limits (``None``: the gateway-wide setting applies)
and a delivery priority, and which tier each tenant is on (docs/admin.md#sla-tiers)."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from .util import new_id

LIMITS = ("activities_per_min", "deliveries_per_min", "max_connections", "max_upload_bytes",
          "retention_days", "max_channels")
TARGETS = ("target_success_rate", "target_sent_p90_ms")  # m0021
COLUMNS = ("id, name, description, priority, " + ", ".join(LIMITS) + ", " + ", ".join(TARGETS)
           + ", inserted_at, updated_at")


class Tier(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str
    priority: int
    activities_per_min: int | None
    deliveries_per_min: int | None
    max_connections: int | None
    max_upload_bytes: int | None
    retention_days: int | None
    max_channels: int | None
    target_success_rate: float | None = None
    target_sent_p90_ms: int | None = None
    inserted_at: str
    updated_at: str


def _tier(row: sqlite3.Row | tuple[Any, ...] | None) -> Tier | None:
    if row is None:
        return None
    names = [c.strip() for c in COLUMNS.split(",")]
    return Tier(**dict(zip(names, tuple(row), strict=True)))


def list_all(conn: sqlite3.Connection) -> list[Tier]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM sla_tiers ORDER BY priority DESC, name").fetchall()
    return [t for t in map(_tier, rows) if t is not None]


def get(conn: sqlite3.Connection, tier_id: str) -> Tier | None:
    return _tier(conn.execute(f"SELECT {COLUMNS} FROM sla_tiers WHERE id = ?", (tier_id,)).fetchone())


def by_name(conn: sqlite3.Connection, name: str) -> Tier | None:
    return _tier(conn.execute(f"SELECT {COLUMNS} FROM sla_tiers WHERE name = ?", (name,)).fetchone())


def create(conn: sqlite3.Connection, fields: dict[str, Any], now: str) -> Tier:
    tier_id = new_id()
    values = {"description": "", "priority": 0, **{k: None for k in (*LIMITS, *TARGETS)}, **fields,
              "id": tier_id, "inserted_at": now, "updated_at": now}
    cols = ", ".join(values)
    conn.execute(f"INSERT INTO sla_tiers ({cols}) VALUES ({', '.join('?' * len(values))})",
                 tuple(values.values()))
    tier = get(conn, tier_id)
    assert tier is not None
    return tier


def update(conn: sqlite3.Connection, tier_id: str, changes: dict[str, Any], now: str) -> Tier | None:
    if changes:
        sets = ", ".join(f"{k} = ?" for k in changes)
        conn.execute(f"UPDATE sla_tiers SET {sets}, updated_at = ? WHERE id = ?",
                     (*changes.values(), now, tier_id))
    return get(conn, tier_id)


def tenants_on(conn: sqlite3.Connection, tier_id: str) -> int:
    return int(conn.execute("SELECT count(*) FROM tenant_tiers WHERE tier_id = ?",
                            (tier_id,)).fetchone()[0])


def delete(conn: sqlite3.Connection, tier_id: str) -> None:
    conn.execute("DELETE FROM sla_tiers WHERE id = ?", (tier_id,))


def of_tenant(conn: sqlite3.Connection, tenant_id: str) -> Tier | None:
    row = conn.execute(
        f"SELECT {', '.join('t.' + c.strip() for c in COLUMNS.split(','))} FROM tenant_tiers tt "
        "JOIN sla_tiers t ON t.id = tt.tier_id WHERE tt.tenant_id = ?", (tenant_id,)).fetchone()
    return _tier(row)


def assign(conn: sqlite3.Connection, tenant_id: str, tier_id: str | None, now: str) -> None:
    """Put the tenant on ``tier_id`` (``None``: on no tier, the gateway-wide limits)."""
    if tier_id is None:
        conn.execute("DELETE FROM tenant_tiers WHERE tenant_id = ?", (tenant_id,))
        return
    conn.execute(
        "INSERT INTO tenant_tiers (tenant_id, tier_id, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant_id) DO UPDATE SET tier_id = excluded.tier_id, "
        "updated_at = excluded.updated_at", (tenant_id, tier_id, now))
