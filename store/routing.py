"""Routing rules: fan an activity out from its conversation's channel to other channels.

Validation follows the original (reference §11): self-reference, tenant isolation, channel
modes, and cycle detection by BFS over the tenant's enabled rules.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

from .models import Channel, RoutingRule, from_row
from .util import dumps, new_id

COLUMNS = "id, tenant_id, name, source_channel_id, target_channel_ids, enabled, inserted_at, updated_at"

Errors = dict[str, list[str]]


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


def list_all(conn: sqlite3.Connection, tenant_id: str | None = None) -> list[RoutingRule]:
    if tenant_id:
        return for_tenant(conn, tenant_id)
    rows = conn.execute(f"SELECT {COLUMNS} FROM routing_rules ORDER BY name, id").fetchall()
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


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def validate(
    conn: sqlite3.Connection,
    *,
    tenant_id: str,
    name: str | None,
    source_channel_id: str | None,
    target_channel_ids: list[str] | None,
    exclude_rule_id: str | None = None,
) -> Errors:
    """Return field → messages for a proposed rule; empty when it is valid."""
    errors: Errors = {}
    if not name:
        _add(errors, "name", "can't be blank")
    elif "\x00" in name:  # SQLite's length() stops at NUL: the CHECK would fail
        _add(errors, "name", "is invalid")
    if not source_channel_id:
        _add(errors, "source_channel_id", "can't be blank")
    if target_channel_ids is None:
        _add(errors, "target_channel_ids", "can't be blank")
        targets: list[str] = []
    else:
        targets = target_channel_ids
        if len(targets) < 1:
            _add(errors, "target_channel_ids", "should have at least 1 item(s)")
        elif len(targets) > 20:
            _add(errors, "target_channel_ids", "should have at most 20 item(s)")
    if name:
        taken = conn.execute(
            "SELECT 1 FROM routing_rules WHERE tenant_id = ? AND name = ? AND id IS NOT ?",
            (tenant_id, name, exclude_rule_id),
        ).fetchone()
        if taken:
            _add(errors, "name", "has already been taken")
    if source_channel_id and source_channel_id in targets:
        _add(errors, "target_channel_ids", "cannot include the source channel")
    if not source_channel_id:
        return errors
    # Tenant isolation: every channel must be the tenant's (unknown ids trip this too).
    ids = list(dict.fromkeys([source_channel_id, *targets]))
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, name, mode FROM channels WHERE tenant_id = ? AND id IN ({marks})",
        (tenant_id, *ids),
    ).fetchall()
    if len(rows) != len(ids):
        _add(errors, "target_channel_ids", "all channels must belong to the same tenant")
    if errors:
        return errors
    by_id = {r["id"]: r for r in rows}
    if by_id[source_channel_id]["mode"] == "outbound":
        _add(errors, "source_channel_id",
             "source channel is outbound-only and cannot receive inbound messages")
    inbound_only = [by_id[t]["name"] for t in targets if by_id[t]["mode"] == "inbound"]
    if inbound_only:
        _add(errors, "target_channel_ids",
             "these target channels are inbound-only and cannot deliver outbound: "
             + ", ".join(inbound_only))
    if errors:
        return errors
    if creates_cycle(conn, tenant_id, source_channel_id, targets, exclude_rule_id):
        _add(errors, "target_channel_ids", "would create a routing cycle")
    return errors


def creates_cycle(
    conn: sqlite3.Connection,
    tenant_id: str,
    source: str,
    targets: list[str],
    exclude_rule_id: str | None,
) -> bool:
    """BFS from the proposed targets over the tenant's enabled rules; reaching ``source`` is a cycle."""
    graph: dict[str, set[str]] = {}
    for rule in for_tenant(conn, tenant_id):
        if rule.enabled and rule.id != exclude_rule_id:
            graph.setdefault(rule.source_channel_id, set()).update(rule.target_channel_ids)
    graph.setdefault(source, set()).update(targets)
    seen: set[str] = set()
    todo = deque(targets)
    while todo:
        node = todo.popleft()
        if node == source:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo.extend(graph.get(node, ()))
    return False


def delivery_targets(
    conn: sqlite3.Connection,
    primary: Channel,
    *,
    outbound_types: frozenset[str],
    exclude_channel_id: str | None = None,
) -> list[Channel]:
    """Channels that must receive an activity of a conversation on ``primary`` (reference §10.1).

    Fixed from the original: an inactive channel gets nothing, and the channel an inbound
    activity came from (``exclude_channel_id``) does not get it back. One hop only.
    """
    result: dict[str, Channel] = {}
    if (
        primary.type in outbound_types
        and primary.mode in ("outbound", "duplex")
        and primary.status == "active"
        and primary.id != exclude_channel_id
    ):
        result[primary.id] = primary
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
