"""Routing rules over the tenant API (reference §5.6, §11), audited as ``tenant_api``."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
from msgspec import UNSET
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import audit, routing
from store.models import RoutingRule, Tenant

from ... import errors
from ...auth import tenant_auth, token_scope
from ...http import decode, empty, json, uuid_param, validation_error
from ..schemas import RoutingRuleFields, rule_out

bp = Blueprint("compat_routing_rules")


class _Body(msgspec.Struct):
    routing_rule: Any = UNSET


def _fields(request: Request) -> RoutingRuleFields:
    raw = decode(request, _Body)
    if raw.routing_rule is UNSET or not isinstance(raw.routing_rule, dict):
        raise errors.bad_request("body must wrap the rule in 'routing_rule'", "missing_wrapper")
    # The tenant always comes from auth; the original accepted and ignored a body tenant_id.
    fields = {k: v for k, v in raw.routing_rule.items() if k != "tenant_id"}
    try:
        return msgspec.convert(fields, RoutingRuleFields)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def _snapshot(rule: RoutingRule) -> dict[str, Any]:
    return msgspec.to_builtins(rule)


def save_rule_tx(
    conn: sqlite3.Connection,
    tenant_id: str,
    rule_id: str | None,
    fields: RoutingRuleFields,
    actor: tuple[str, str],
    now: str,
) -> RoutingRule:
    """Create (``rule_id`` None) or update a rule after validating it; audited."""
    before = routing.get_for_tenant(conn, tenant_id, rule_id) if rule_id else None
    if rule_id and before is None:
        raise LookupError(rule_id)
    name = fields.name if fields.name is not UNSET else (before.name if before else None)
    source = (fields.source_channel_id if fields.source_channel_id is not UNSET
              else (before.source_channel_id if before else None))
    targets = (fields.target_channel_ids if fields.target_channel_ids is not UNSET
               else (before.target_channel_ids if before else None))
    enabled = fields.enabled if fields.enabled is not UNSET else (before.enabled if before else True)
    errs = routing.validate(
        conn, tenant_id=tenant_id, name=name, source_channel_id=source,
        target_channel_ids=targets, exclude_rule_id=rule_id,
    )
    if errs:
        raise errors.validation(errs)
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
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action=action,
                 resource_type="routing_rule", resource_id=rule.id, tenant_id=tenant_id, now=now,
                 before=_snapshot(before) if before else None, after=_snapshot(rule))
    return rule


def delete_rule_tx(
    conn: sqlite3.Connection, tenant_id: str, rule_id: str, actor: tuple[str, str], now: str
) -> bool:
    before = routing.get_for_tenant(conn, tenant_id, rule_id)
    if before is None:
        return False
    routing.delete(conn, rule_id)
    audit.record(conn, actor_type=actor[0], actor_id=actor[1], action="delete",
                 resource_type="routing_rule", resource_id=rule_id, tenant_id=tenant_id, now=now,
                 before=_snapshot(before), after=None)
    return True


async def _tenant(request: Request) -> Tenant:
    """TenantAuth, refusing conversation (user) tokens: they reach only their conversation,
    never the tenant's routing configuration."""
    tenant, claims = await tenant_auth(request)
    if token_scope(claims) is not None:
        raise errors.forbidden("a conversation token cannot manage routing rules",
                               "token_out_of_scope")
    return tenant


@bp.get("/routing_rules")
async def list_rules(request: Request) -> HTTPResponse:
    tenant = await _tenant(request)
    rules = await request.app.ctx.db.read(routing.for_tenant, tenant.id)
    return json({"data": [rule_out(r) for r in rules]})


@bp.get("/routing_rules/<rule_id>")
async def show_rule(request: Request, rule_id: str) -> HTTPResponse:
    rule_id = uuid_param(rule_id)
    tenant = await _tenant(request)
    rule = await request.app.ctx.db.read(routing.get_for_tenant, tenant.id, rule_id)
    if rule is None:
        raise errors.not_found()
    return json({"data": rule_out(rule)})


@bp.post("/routing_rules")
async def create_rule(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    tenant = await _tenant(request)
    fields = _fields(request)
    rule = await ctx.db.write(save_rule_tx, tenant.id, None, fields, ("tenant_api", tenant.id),
                              ctx.now_iso())
    return json({"data": rule_out(rule)}, status=201)


@bp.route("/routing_rules/<rule_id>", methods=["PATCH", "PUT"])
async def update_rule(request: Request, rule_id: str) -> HTTPResponse:
    ctx = request.app.ctx
    rule_id = uuid_param(rule_id)
    tenant = await _tenant(request)
    fields = _fields(request)
    try:
        rule = await ctx.db.write(save_rule_tx, tenant.id, rule_id, fields,
                                  ("tenant_api", tenant.id), ctx.now_iso())
    except LookupError:
        raise errors.not_found() from None
    return json({"data": rule_out(rule)})


@bp.delete("/routing_rules/<rule_id>")
async def delete_rule(request: Request, rule_id: str) -> HTTPResponse:
    ctx = request.app.ctx
    rule_id = uuid_param(rule_id)
    tenant = await _tenant(request)
    if not await ctx.db.write(delete_rule_tx, tenant.id, rule_id, ("tenant_api", tenant.id),
                              ctx.now_iso()):
        raise errors.not_found()
    return empty(204)
