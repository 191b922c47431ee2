"""Routing rules over the tenant API, audited as ``tenant_api`` (rules: gateway/domain/routing.py)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from store import routing
from store.models import RoutingRule, Tenant

from ... import errors, forms
from ...auth import is_channel_token, tenant_auth, token_scope
from ...domain import Actor
from ...domain import routing as rule_ops
from ...http import decode, empty, gw, json, uuid_param, validation_error
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
        # A form's values are text: converted as the fields want them (gateway/forms.py).
        return msgspec.convert(fields, RoutingRuleFields, strict=not forms.is_form(request))
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


async def _tenant(request: Request) -> Tenant:
    """TenantAuth, refusing conversation (user) tokens: they reach only their conversation,
    never the tenant's routing configuration. A channel's token reads the rules of its own
    channel and changes none (issue 13): routing is the tenant's, its API key's."""
    tenant, claims = await tenant_auth(request)
    if token_scope(claims) is not None:
        raise errors.forbidden("a conversation token cannot manage routing rules",
                               "token_out_of_scope")
    if claims is not None and is_channel_token(claims):
        if request.method not in ("GET", "HEAD"):
            raise errors.forbidden("a channel token cannot change routing rules",
                                   "token_out_of_scope")
        request.ctx.rule_channel = claims["channel_id"]
    return tenant


def _visible(request: Request, rule: RoutingRule) -> bool:
    channel_id = request.ctx.rule_channel
    return channel_id is None or channel_id == rule.source_channel_id or (
        channel_id in rule.target_channel_ids)


@bp.get("/routing_rules")
async def list_rules(request: Request) -> HTTPResponse:
    tenant = await _tenant(request)
    rules = await gw(request).db.read(routing.for_tenant, tenant.id)
    return json({"data": [rule_out(r) for r in rules if _visible(request, r)]})


@bp.get("/routing_rules/<rule_id>")
async def show_rule(request: Request, rule_id: str) -> HTTPResponse:
    rule_id = uuid_param(rule_id)
    tenant = await _tenant(request)
    rule = await gw(request).db.read(routing.get_for_tenant, tenant.id, rule_id)
    if rule is None or not _visible(request, rule):
        raise errors.not_found()
    return json({"data": rule_out(rule)})


@bp.post("/routing_rules")
async def create_rule(request: Request) -> HTTPResponse:
    tenant = await _tenant(request)
    fields = _fields(request)
    rule = await rule_ops.create(gw(request), Actor("tenant_api", tenant.id), tenant.id, fields)
    return json({"data": rule_out(rule)}, status=201)


@bp.route("/routing_rules/<rule_id>", methods=["PATCH", "PUT"])
async def update_rule(request: Request, rule_id: str) -> HTTPResponse:
    rule_id = uuid_param(rule_id)
    tenant = await _tenant(request)
    fields = _fields(request)
    rule = await rule_ops.update(gw(request), Actor("tenant_api", tenant.id), rule_id, fields,
                                 tenant_id=tenant.id)
    return json({"data": rule_out(rule)})


@bp.delete("/routing_rules/<rule_id>")
async def delete_rule(request: Request, rule_id: str) -> HTTPResponse:
    rule_id = uuid_param(rule_id)
    tenant = await _tenant(request)
    await rule_ops.delete(gw(request), Actor("tenant_api", tenant.id), rule_id,
                          tenant_id=tenant.id)
    return empty(204)
