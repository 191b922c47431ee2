"""Routing rules: fan an activity out from its conversation's channel to other channels.

A rule is valid when it has a name unique in its tenant, a source and 1 to 20 targets that are
all the tenant's channels, the source is not among the targets, the source can receive
(not outbound-only) and every target can send (not inbound-only), and, with the tenant's other
enabled rules, it closes no cycle (a breadth-first walk from the targets never reaches the
source). The store keeps the queries (store/routing.py); the rules are here."""

from __future__ import annotations

import sqlite3
from collections import deque

import msgspec
from msgspec import UNSET, UnsetType

from store import routing
from store.models import RoutingRule

from ..context import Gateway
from .base import Actor, record, snap
from .errors import NotFound, ValidationFailed

Errors = dict[str, list[str]]
MAX_TARGETS = 20


class RuleFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields a rule change may set (the API's body and the admin form): unset = keep."""
    name: str | UnsetType = UNSET
    source_channel_id: str | UnsetType = UNSET
    target_channel_ids: list[str] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


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
        elif len(targets) > MAX_TARGETS:
            _add(errors, "target_channel_ids", f"should have at most {MAX_TARGETS} item(s)")
    if name and routing.name_taken(conn, tenant_id, name, exclude_rule_id):
        _add(errors, "name", "has already been taken")
    if source_channel_id and source_channel_id in targets:
        _add(errors, "target_channel_ids", "cannot include the source channel")
    if not source_channel_id:
        return errors
    # Tenant isolation: every channel must be the tenant's (unknown ids trip this too).
    ids = list(dict.fromkeys([source_channel_id, *targets]))
    found = routing.channel_modes(conn, tenant_id, ids)
    if len(found) != len(ids):
        _add(errors, "target_channel_ids", "all channels must belong to the same tenant")
    if errors:
        return errors
    if found[source_channel_id][1] == "outbound":
        _add(errors, "source_channel_id",
             "source channel is outbound-only and cannot receive inbound messages")
    inbound_only = [found[t][0] for t in targets if found[t][1] == "inbound"]
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
    for rule in routing.for_tenant(conn, tenant_id):
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


# -- transactions (run on the writer) ---------------------------------------------------------
def save_tx(conn: sqlite3.Connection, tenant_id: str, rule_id: str | None, fields: RuleFields,
            actor: tuple[str, str], now: str) -> RoutingRule:
    """Create (``rule_id`` None) or update a rule of ``tenant_id`` after validating it."""
    before = routing.get_for_tenant(conn, tenant_id, rule_id) if rule_id else None
    if rule_id and before is None:
        raise NotFound("routing rule")
    name = fields.name if fields.name is not UNSET else (before.name if before else None)
    source = (fields.source_channel_id if fields.source_channel_id is not UNSET
              else (before.source_channel_id if before else None))
    targets = (fields.target_channel_ids if fields.target_channel_ids is not UNSET
               else (before.target_channel_ids if before else None))
    enabled = fields.enabled if fields.enabled is not UNSET else (before.enabled if before else True)
    errs = validate(conn, tenant_id=tenant_id, name=name, source_channel_id=source,
                    target_channel_ids=targets, exclude_rule_id=rule_id)
    if errs:
        raise ValidationFailed(errs)
    assert name and source and targets is not None
    if before is None:
        rule = routing.insert(conn, tenant_id=tenant_id, name=name, source_channel_id=source,
                              target_channel_ids=targets, enabled=enabled, now=now)
        action = "create"
    else:
        rule = routing.update(conn, msgspec.structs.replace(
            before, name=name, source_channel_id=source, target_channel_ids=targets,
            enabled=enabled), now)
        action = "update"
    record(conn, actor, action, "routing_rule", rule.id, now, tenant_id=tenant_id,
           before=snap(before) if before else None, after=snap(rule))
    return rule


def _owned(conn: sqlite3.Connection, rule_id: str, tenant_id: str | None) -> RoutingRule:
    rule = (routing.get(conn, rule_id) if tenant_id is None
            else routing.get_for_tenant(conn, tenant_id, rule_id))
    if rule is None:
        raise NotFound("routing rule")
    return rule


def toggle_tx(conn: sqlite3.Connection, rule_id: str, tenant_id: str | None,
              actor: tuple[str, str], now: str) -> RoutingRule:
    rule = _owned(conn, rule_id, tenant_id)
    return save_tx(conn, rule.tenant_id, rule.id, RuleFields(enabled=not rule.enabled), actor, now)


def delete_tx(conn: sqlite3.Connection, rule_id: str, tenant_id: str | None,
              actor: tuple[str, str], now: str) -> RoutingRule:
    before = _owned(conn, rule_id, tenant_id)
    routing.delete(conn, rule_id)
    record(conn, actor, "delete", "routing_rule", rule_id, now, tenant_id=before.tenant_id,
           before=snap(before), after=None)
    return before


# -- operations -------------------------------------------------------------------------------
async def create(gw: Gateway, actor: Actor, tenant_id: str, fields: RuleFields) -> RoutingRule:
    return await gw.db.write(save_tx, tenant_id, None, fields, actor, gw.now_iso())


async def update(gw: Gateway, actor: Actor, rule_id: str, fields: RuleFields, *,
                 tenant_id: str | None = None) -> RoutingRule:
    """``tenant_id`` set (the tenant API, the portal): only that tenant's rule."""
    def tx(conn: sqlite3.Connection) -> RoutingRule:
        rule = _owned(conn, rule_id, tenant_id)
        return save_tx(conn, rule.tenant_id, rule_id, fields, actor, gw.now_iso())

    return await gw.db.write(tx)


async def toggle(gw: Gateway, actor: Actor, rule_id: str, *,
                 tenant_id: str | None = None) -> RoutingRule:
    """Enable a disabled rule (validated again: enabling can close a cycle) or disable it."""
    return await gw.db.write(toggle_tx, rule_id, tenant_id, actor, gw.now_iso())


async def delete(gw: Gateway, actor: Actor, rule_id: str, *, tenant_id: str | None = None) -> None:
    await gw.db.write(delete_tx, rule_id, tenant_id, actor, gw.now_iso())
