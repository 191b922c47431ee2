"""Routing rules: fan an activity out from its conversation's channel to other channels.
The queries; what makes a rule valid is in gateway/domain/routing.py."""

from __future__ import annotations

import sqlite3
from typing import Any

from .models import Channel, ChannelRef, RoutingRule, from_row
from .util import dumps, new_id, within

COLUMNS = "id, tenant_id, name, source_channel_id, target_channel_ids, enabled, inserted_at, updated_at"


def get_for_tenant(conn: sqlite3.Connection, tenant_id: str, rule_id: str) -> RoutingRule | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM routing_rules WHERE id = ? AND tenant_id = ?", (rule_id, tenant_id)
    ).fetchone()
    return from_row(RoutingRule, row) if row else None


def get(conn: sqlite3.Connection, rule_id: str) -> RoutingRule | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM routing_rules WHERE id = ?", (rule_id,)).fetchone()
    return from_row(RoutingRule, row) if row else None


def for_tenant(conn: sqlite3.Connection, tenant_id: str) -> list[RoutingRule]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM routing_rules WHERE tenant_id = ? ORDER BY name, id", (tenant_id,)
    ).fetchall()
    return [from_row(RoutingRule, r) for r in rows]


def list_all(conn: sqlite3.Connection, tenant_id: str | None = None,
             tenant_ids: Any = None) -> list[RoutingRule]:
    """``tenant_ids``: only these tenants' rules (an access scope; None: no limit)."""
    if tenant_id and tenant_ids is None:
        return for_tenant(conn, tenant_id)
    sql, params = f"SELECT {COLUMNS} FROM routing_rules WHERE 1=1", []
    if tenant_id:
        sql, params = sql + " AND tenant_id = ?", [tenant_id]
    clause, more = within("tenant_id", tenant_ids)
    rows = conn.execute(sql + clause + " ORDER BY name, id", [*params, *more]).fetchall()
    return [from_row(RoutingRule, r) for r in rows]


def insert(
    conn: sqlite3.Connection,
    *,
    tenant_id: str,
    name: str,
    source_channel_id: str,
    target_channel_ids: list[str],
    enabled: bool,
    now: str,
) -> RoutingRule:
    row = conn.execute(
        f"""INSERT INTO routing_rules ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (new_id(), tenant_id, name, source_channel_id, dumps(target_channel_ids), int(enabled), now, now),
    ).fetchone()
    return from_row(RoutingRule, row)


def update(conn: sqlite3.Connection, rule: RoutingRule, now: str) -> RoutingRule:
    row = conn.execute(
        f"""UPDATE routing_rules SET name = ?, source_channel_id = ?, target_channel_ids = ?,
                   enabled = ?, updated_at = ? WHERE id = ? RETURNING {COLUMNS}""",
        (rule.name, rule.source_channel_id, dumps(rule.target_channel_ids), int(rule.enabled), now,
         rule.id),
    ).fetchone()
    return from_row(RoutingRule, row)


def delete(conn: sqlite3.Connection, rule_id: str) -> bool:
    return conn.execute("DELETE FROM routing_rules WHERE id = ?", (rule_id,)).rowcount > 0


def name_taken(conn: sqlite3.Connection, tenant_id: str, name: str,
               exclude_rule_id: str | None = None) -> bool:
    return conn.execute(
        "SELECT 1 FROM routing_rules WHERE tenant_id = ? AND name = ? AND id IS NOT ?",
        (tenant_id, name, exclude_rule_id),
    ).fetchone() is not None


def channel_modes(conn: sqlite3.Connection, tenant_id: str,
                  channel_ids: list[str]) -> dict[str, tuple[str, str]]:
    """id → (name, mode) of those of ``channel_ids`` that are ``tenant_id``'s channels."""
    if not channel_ids:
        return {}
    marks = ",".join("?" * len(channel_ids))
    rows = conn.execute(
        f"SELECT id, name, mode FROM channels WHERE tenant_id = ? AND id IN ({marks})",
        (tenant_id, *channel_ids),
    ).fetchall()
    return {r["id"]: (r["name"], r["mode"]) for r in rows}


def delivery_targets(
    conn: sqlite3.Connection,
    primary: Channel | ChannelRef,
    *,
    outbound_types: frozenset[str],
    exclude_channel_id: str | None = None,
    rules: bool = True,
) -> list[Channel | ChannelRef]:
    """Channels that must receive an activity of a conversation on ``primary`` (docs/delivery.md):
    the conversation's own channel and the targets of the enabled rules whose source it is
    (``rules=False``: the caller has read, in the same transaction, that there are none).

    Fixed from the original: an inactive channel gets nothing, and the channel an inbound
    activity came from (``exclude_channel_id``) does not get it back. One hop only.
    """
    result: dict[str, Channel | ChannelRef] = {}
    if (
        primary.type in outbound_types
        and primary.mode in ("outbound", "duplex")
        and primary.status == "active"
        and primary.id != exclude_channel_id
    ):
        result[primary.id] = primary
    if not rules:
        return list(result.values())
    rows = conn.execute(
        "SELECT target_channel_ids FROM routing_rules WHERE source_channel_id = ? AND tenant_id = ? AND enabled = 1",
        (primary.id, primary.tenant_id),
    ).fetchall()
    if rows:
        from .channels import many

        ids: list[str] = []
        for row in rows:
            ids.extend(_loads_list(row[0]))
        wanted = [i for i in dict.fromkeys(ids) if i != primary.id and i != exclude_channel_id]
        for channel in many(conn, wanted):
            if (
                channel.tenant_id == primary.tenant_id
                and channel.type in outbound_types
                and channel.status == "active"
                and channel.mode in ("outbound", "duplex")
            ):
                result.setdefault(channel.id, channel)
    return list(result.values())


def _loads_list(text: str) -> list[Any]:
    from .util import loads

    value = loads(text, [])
    return value if isinstance(value, list) else []
