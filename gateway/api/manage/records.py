"""Management views over conversations (list, close, reopen), deliveries, routing rules, the
audit log, channel health, health alerts and admin API tokens."""

from __future__ import annotations

from typing import Any

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import admin_tokens, alerts, audit, conversations, queue, routing

from ... import errors
from ...auth import admin_auth, authorize_body_tenant, channel_ids, tenant_ids
from ...domain import admin_tokens as token_ops
from ...domain import conversations as conversation_ops
from ...domain import deliveries as delivery_ops
from ...domain import routing as rule_ops
from ...http import decode, empty, gw, int_arg, json, uuid_param
from ...shapes import public
from ..schemas import AdminTokenCreate, RoutingRuleFields, conversation_out, rule_out

bp = Blueprint("manage_records")

DELIVERY_STATUSES = delivery_ops.STATUSES
ALERT_STATUSES = ("pending", "sent", "failed")


def _uuid_args(request: Request, *names: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        value = request.args.get(name)
        out[name] = uuid_param(value, name) if value else None
    return out


def _status_arg(request: Request, allowed: tuple[str, ...]) -> str | None:
    status = request.args.get("status")
    if status and status not in allowed:
        raise errors.bad_request(f"status must be one of {', '.join(allowed)}", "invalid_query")
    return status or None


async def _paged(request: Request, fn: Any, **filters: Any) -> tuple[list[Any], str | None]:
    """A page of ``fn``'s rows, within the principal's scope (``channels``: whether the rows
    hang under a channel, so a channel-scoped token sees its channels' only)."""
    who = request.ctx.principal
    if who.scoped:
        filters["tenant_ids"] = tenant_ids(who, filters.get("tenant_id"))
        if filters.pop("channels", True):
            filters["channel_ids"] = channel_ids(who)
        elif who.channels is not None:
            filters["tenant_ids"] = frozenset()
    filters.pop("channels", None)
    limit = int_arg(request, "limit", 50)
    cursor = request.args.get("cursor")
    try:
        return await gw(request).db.read(
            lambda c: fn(c, limit=limit, cursor=cursor, **filters)
        )
    except ValueError:
        raise errors.bad_request("invalid cursor", "invalid_cursor") from None


@bp.get("/conversations")
async def list_conversations(request: Request) -> HTTPResponse:
    await admin_auth(request)
    ids = _uuid_args(request, "tenant_id", "channel_id")
    items, nxt = await _paged(request, conversations.list_page, status=request.args.get("status"), **ids)
    return json({"data": [conversation_out(c) for c in items], "next": nxt})


@bp.post("/conversations/<conversation_id>/close")
async def close_conversation(request: Request, conversation_id: str) -> HTTPResponse:
    """Closed: no new activity is accepted (409 ``conversation_closed``); an inbound message
    from its sender starts a new conversation. Closing a closed one changes nothing."""
    conversation_id = uuid_param(conversation_id)
    who = await admin_auth(request)
    conv = await conversation_ops.close(gw(request), who.actor, conversation_id)
    return json({"data": conversation_out(conv)})


@bp.post("/conversations/<conversation_id>/reopen")
async def reopen_conversation(request: Request, conversation_id: str) -> HTTPResponse:
    conversation_id = uuid_param(conversation_id)
    who = await admin_auth(request)
    conv = await conversation_ops.reopen(gw(request), who.actor, conversation_id)
    return json({"data": conversation_out(conv)})


@bp.get("/deliveries")
async def list_deliveries(request: Request) -> HTTPResponse:
    await admin_auth(request)
    status = _status_arg(request, DELIVERY_STATUSES)
    ids = _uuid_args(request, "tenant_id", "channel_id", "activity_id")
    items, nxt = await _paged(request, queue.list_page, status=status, **ids)
    return json({"data": [public(d) for d in items], "next": nxt})


@bp.post("/deliveries/<delivery_id>/retry")
async def retry_delivery(request: Request, delivery_id: str) -> HTTPResponse:
    delivery_id = uuid_param(delivery_id)
    who = await admin_auth(request)
    d = await delivery_ops.retry(gw(request), who.actor, delivery_id)
    return json({"data": public(d)})


@bp.get("/audit")
async def list_audit(request: Request) -> HTTPResponse:
    await admin_auth(request)
    args = request.args
    ids = _uuid_args(request, "tenant_id")
    items, nxt = await _paged(
        request, audit.list_page, actor_type=args.get("actor_type"), action=args.get("action"),
        resource_type=args.get("resource_type"), resource_id=args.get("resource_id"),
        channels=False, **ids,
    )
    return json({"data": [msgspec.to_builtins(a) for a in items], "next": nxt})


@bp.get("/health")
async def channel_health(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    scope, chans = tenant_ids(who, None), channel_ids(who)

    def latest(conn):
        rows = conn.execute(
            """SELECT h.channel_id, c.name AS channel_name, c.tenant_id, c.type, h.status,
                      h.failure_rate, h.total_deliveries, h.failed_deliveries, h.checked_at
                 FROM channel_health_checks h JOIN channels c ON c.id = h.channel_id
                WHERE h.checked_at = (SELECT max(checked_at) FROM channel_health_checks
                                       WHERE channel_id = h.channel_id)
                ORDER BY c.name"""
        ).fetchall()
        return [dict(r) for r in rows if (scope is None or r["tenant_id"] in scope)
                and (chans is None or r["channel_id"] in chans)]

    return json({"data": await gw(request).db.read(latest), "next": None})


@bp.get("/alerts")
async def list_alerts(request: Request) -> HTTPResponse:
    """The health alerts queued for tenants' ``alert_webhook_url``: pending (with the next
    attempt's time), sent, or failed with the last error."""
    await admin_auth(request)
    status = _status_arg(request, ALERT_STATUSES)
    ids = _uuid_args(request, "tenant_id", "channel_id")
    items, nxt = await _paged(request, alerts.list_page, status=status, **ids)
    return json({"data": [public(a) for a in items], "next": nxt})


# -- routing rules (any tenant) -------------------------------------------------------------
class _AdminRule(RoutingRuleFields, kw_only=True, forbid_unknown_fields=True):
    tenant_id: str | msgspec.UnsetType = msgspec.UNSET


@bp.get("/routing_rules")
async def list_rules(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    ids = _uuid_args(request, "tenant_id")
    scope = tenant_ids(who, ids["tenant_id"])
    if who.channels is not None:  # rules belong to a tenant, not to a channel
        scope = frozenset()
    rules = await gw(request).db.read(routing.list_all, ids["tenant_id"], scope)
    return json({"data": [rule_out(r) for r in rules], "next": None})


@bp.post("/routing_rules")
async def create_rule(request: Request) -> HTTPResponse:
    ctx = gw(request)
    who = await admin_auth(request)
    body = decode(request, _AdminRule, empty_ok=False)
    if not isinstance(body.tenant_id, str):
        raise errors.validation({"tenant_id": ["can't be blank"]})
    tenant_id = uuid_param(body.tenant_id, "tenant_id")
    await authorize_body_tenant(request, who, tenant_id, "routing_rules:write")
    fields = msgspec.convert(
        {k: v for k, v in msgspec.to_builtins(body).items() if k != "tenant_id"}, RoutingRuleFields
    )
    rule = await rule_ops.create(ctx, who.actor, tenant_id, fields)
    return json({"data": rule_out(rule)}, status=201)


@bp.patch("/routing_rules/<rule_id>")
async def update_rule(request: Request, rule_id: str) -> HTTPResponse:
    rule_id = uuid_param(rule_id)
    who = await admin_auth(request)
    fields = decode(request, RoutingRuleFields)
    rule = await rule_ops.update(gw(request), who.actor, rule_id, fields)
    return json({"data": rule_out(rule)})


@bp.delete("/routing_rules/<rule_id>")
async def delete_rule(request: Request, rule_id: str) -> HTTPResponse:
    rule_id = uuid_param(rule_id)
    who = await admin_auth(request)
    await rule_ops.delete(gw(request), who.actor, rule_id)
    return empty(204)


# -- admin API tokens -----------------------------------------------------------------------
@bp.get("/tokens")
async def list_tokens(request: Request) -> HTTPResponse:
    await admin_auth(request)
    rows = await gw(request).db.read(admin_tokens.list_all)
    return json({"data": [msgspec.to_builtins(r) for r in rows], "next": None})


@bp.post("/tokens")
async def create_token(request: Request) -> HTTPResponse:
    who = await admin_auth(request)
    body = decode(request, AdminTokenCreate, empty_ok=False)
    row, token = await token_ops.create(
        gw(request), who.actor, name=body.name, role=body.role, tenant_scope=body.tenant_scope,
        channel_scope=body.channel_scope, expires_at=body.expires_at, granter=who)
    view = msgspec.to_builtins(row)
    view["token"] = token
    return json({"data": view}, status=201)


@bp.delete("/tokens/<token_id>")
async def revoke_token(request: Request, token_id: str) -> HTTPResponse:
    token_id = uuid_param(token_id)
    who = await admin_auth(request)
    await token_ops.revoke(gw(request), who.actor, token_id)
    return empty(204)
