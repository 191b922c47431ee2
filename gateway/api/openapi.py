"""The OpenAPI 3.1 document at ``/api/openapi.json``, generated from the msgspec schemas.

Every JSON route is listed in ``OPERATIONS`` with its auth and its error responses; a test
checks that every route the app serves under ``/api`` is described here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from gateway import __version__

from ..http import json
from . import schemas as s


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details; also carries the original's ``errors``/``error`` member."""

    type: str
    title: str
    status: int
    detail: str
    code: str


class Op(NamedTuple):
    method: str
    path: str
    summary: str
    auth: tuple[str, ...]
    body: Any = None
    ok: int = 200
    result: Any = None  # a Struct (wrapped in {"data": …} when wrap), dict schema, or None
    errors: tuple[int, ...] = (400, 401, 404)
    wrap: str = "data"  # "data", "page" (data + next), "" (as is)
    query: tuple[str, ...] = ()
    media: str = "application/json"  # of the success answer
    body_media: str = "application/json"  # of the request body


API_KEY = ("apiKey", "channelToken")
ADMIN = ("adminToken",)
CHANNEL = ("channelToken",)

TOKEN_OUT = {"type": "object", "properties": {"token": {"type": "string"},
             "expires_in": {"type": "integer"}}, "required": ["token", "expires_in"]}
STATUS_OUT = {"type": "object", "properties": {"status": {"type": "string"},
              "checks": {"type": "object"}}, "required": ["status"]}
ANY_OBJECT: dict[str, Any] = {"type": "object"}

OPERATIONS: list[Op] = [
    Op("GET", "/livez", "Liveness", (), result=STATUS_OUT, errors=(), wrap=""),
    Op("GET", "/readyz", "Readiness (database writable, workers alive, replication)", (),
       result=STATUS_OUT, errors=(503,), wrap=""),
    # compatible API
    Op("POST", "/api/v1/tokens", "Mint a user (conversation) token", CHANNEL, s.TokenIn, 201,
       TOKEN_OUT, (400, 401, 403, 404, 422, 429), ""),
    Op("POST", "/api/v1/conversations", "Create a conversation on the token's channel", CHANNEL,
       s.ConversationIn, 201, s.ConversationOut, (400, 401, 403, 422)),
    Op("GET", "/api/v1/conversations/{conversation_id}", "Show a conversation", API_KEY,
       result=s.ConversationOut),
    Op("POST", "/api/v1/conversations/{conversation_id}/activities",
       "Create an activity (x-idempotency-key makes retries safe)", API_KEY, s.ActivityIn, 201,
       s.ActivityOut, (400, 401, 404, 409, 413, 422, 429)),
    Op("GET", "/api/v1/conversations/{conversation_id}/activities",
       "List a conversation's activities in seq order", API_KEY, result=[s.ActivityOut],
       query=("include",)),
    Op("GET", "/api/v1/routing_rules", "List routing rules", API_KEY, result=[s.RoutingRuleOut],
       errors=(401,)),
    Op("POST", "/api/v1/routing_rules", "Create a routing rule", API_KEY, s.RoutingRuleIn, 201,
       s.RoutingRuleOut, (400, 401, 422)),
    Op("GET", "/api/v1/routing_rules/{rule_id}", "Show a routing rule", API_KEY,
       result=s.RoutingRuleOut),
    Op("PATCH", "/api/v1/routing_rules/{rule_id}", "Update a routing rule", API_KEY,
       s.RoutingRuleIn, 200, s.RoutingRuleOut, (400, 401, 404, 422)),
    Op("PUT", "/api/v1/routing_rules/{rule_id}", "Update a routing rule", API_KEY,
       s.RoutingRuleIn, 200, s.RoutingRuleOut, (400, 401, 404, 422)),
    Op("DELETE", "/api/v1/routing_rules/{rule_id}", "Delete a routing rule", API_KEY, ok=204),
    # inbound webhooks (signed with x-converger-signature, or the provider's own signature)
    Op("GET", "/api/v1/channels/{channel_id}/inbound", "Provider verification challenge", (),
       result={"type": "string"}, errors=(400, 403, 404), wrap="",
       query=("hub.mode", "hub.verify_token", "hub.challenge"), media="text/plain"),
    Op("POST", "/api/v1/channels/{channel_id}/inbound", "Inbound message or status receipts",
       (), ANY_OBJECT, 201, ANY_OBJECT, (400, 401, 404, 413), ""),
    Op("POST", "/api/v1/channels/{channel_id}/status", "Delivery status receipts", (),
       ANY_OBJECT, 200, ANY_OBJECT, (400, 401, 404, 413), ""),
    # management API
    Op("POST", "/api/admin/tenants", "Create a tenant (the API key is in the answer, once)",
       ADMIN, s.TenantCreate, 201, s.TenantOut, (400, 401, 403, 422)),
    Op("GET", "/api/admin/tenants", "List tenants", ADMIN, result=[s.TenantOut], errors=(400, 401),
       wrap="page", query=("limit", "cursor", "status")),
    Op("GET", "/api/admin/tenants/{tenant_id}", "Show a tenant", ADMIN, result=s.TenantOut),
    Op("PATCH", "/api/admin/tenants/{tenant_id}", "Update a tenant", ADMIN, s.TenantPatch, 200,
       s.TenantOut, (400, 401, 403, 404, 422)),
    Op("DELETE", "/api/admin/tenants/{tenant_id}", "Delete a tenant and everything it owns",
       ADMIN, ok=204, errors=(400, 401, 403, 404)),
    Op("POST", "/api/admin/tenants/{tenant_id}/rotate-key", "Issue a new API key (once)", ADMIN,
       ok=200, result=s.TenantOut, errors=(400, 401, 403, 404)),
    Op("POST", "/api/admin/channels", "Create a channel (the secret is in the answer, once)",
       ADMIN, s.ChannelCreate, 201, s.ChannelOut, (400, 401, 403, 422)),
    Op("GET", "/api/admin/channels", "List channels", ADMIN, result=[s.ChannelOut],
       errors=(400, 401), wrap="page", query=("tenant_id", "type", "mode", "status", "limit", "cursor")),
    Op("GET", "/api/admin/channels/{channel_id}", "Show a channel", ADMIN, result=s.ChannelOut),
    Op("PATCH", "/api/admin/channels/{channel_id}", "Update a channel", ADMIN, s.ChannelPatch,
       200, s.ChannelOut, (400, 401, 403, 404, 422)),
    Op("DELETE", "/api/admin/channels/{channel_id}", "Delete a channel", ADMIN, ok=204,
       errors=(400, 401, 403, 404)),
    Op("POST", "/api/admin/channels/{channel_id}/rotate-secret", "Issue a new secret (once)",
       ADMIN, result=s.ChannelOut, errors=(400, 401, 403, 404)),
    Op("POST", "/api/admin/channels/{channel_id}/token", "Mint a channel token", ADMIN,
       result=TOKEN_OUT, errors=(400, 401, 403, 404), wrap=""),
    Op("GET", "/api/admin/conversations", "List conversations", ADMIN, result=[s.ConversationOut],
       errors=(400, 401), wrap="page", query=("tenant_id", "channel_id", "status", "limit", "cursor")),
    Op("GET", "/api/admin/deliveries", "List deliveries", ADMIN, result=[ANY_OBJECT],
       errors=(400, 401), wrap="page",
       query=("tenant_id", "channel_id", "activity_id", "status", "limit", "cursor")),
    Op("POST", "/api/admin/deliveries/{delivery_id}/retry", "Make a failed delivery due now",
       ADMIN, result=ANY_OBJECT, errors=(400, 401, 403, 404, 409)),
    Op("GET", "/api/admin/audit", "Audit log", ADMIN, result=[ANY_OBJECT], errors=(400, 401),
       wrap="page", query=("tenant_id", "actor_type", "action", "resource_type", "resource_id",
                           "limit", "cursor")),
    Op("GET", "/api/admin/health", "Latest health check of each channel", ADMIN,
       result=[ANY_OBJECT], errors=(401,), wrap="page"),
    Op("GET", "/api/admin/routing_rules", "List routing rules of every tenant", ADMIN,
       result=[s.RoutingRuleOut], errors=(400, 401), wrap="page", query=("tenant_id",)),
    Op("POST", "/api/admin/routing_rules", "Create a routing rule for a tenant", ADMIN,
       ANY_OBJECT, 201, s.RoutingRuleOut, (400, 401, 403, 422)),
    Op("PATCH", "/api/admin/routing_rules/{rule_id}", "Update a routing rule", ADMIN,
       s.RoutingRuleFields, 200, s.RoutingRuleOut, (400, 401, 403, 404, 422)),
    Op("DELETE", "/api/admin/routing_rules/{rule_id}", "Delete a routing rule", ADMIN, ok=204,
       errors=(400, 401, 403, 404)),
    Op("GET", "/api/admin/tokens", "List admin API tokens", ADMIN, result=[ANY_OBJECT],
       errors=(401,), wrap="page"),
    Op("POST", "/api/admin/tokens", "Create an admin API token (shown once)", ADMIN,
       s.AdminTokenCreate, 201, ANY_OBJECT, (400, 401, 403, 422)),
    Op("DELETE", "/api/admin/tokens/{token_id}", "Revoke an admin API token", ADMIN, ok=204,
       errors=(400, 401, 403, 404)),
]

SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "channelToken": {"type": "apiKey", "in": "header", "name": "x-channel-token"},
    "adminToken": {"type": "http", "scheme": "bearer", "description": "admin API token"},
    "convergerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}


def _collect(value: Any, out: set[Any]) -> None:
    if isinstance(value, list):
        for v in value:
            _collect(v, out)
    elif isinstance(value, type) and issubclass(value, msgspec.Struct):
        out.add(value)


def _schema(value: Any, refs: dict[Any, Any]) -> dict[str, Any]:
    if isinstance(value, list):
        return {"type": "array", "items": _schema(value[0], refs)}
    if isinstance(value, dict):
        return value
    return refs[value]


def document() -> dict[str, Any]:
    """Build the OpenAPI document."""
    types: set[Any] = {Problem}
    for op in OPERATIONS:
        _collect(op.body, types)
        _collect(op.result, types)
    ordered = sorted(types, key=lambda t: t.__name__)
    refs_list, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    refs = dict(zip(ordered, refs_list, strict=True))
    problem = {"application/problem+json": {"schema": refs[Problem]}}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {"summary": op.summary, "operationId": _op_id(op),
                                 "responses": {}}
        params = [{"name": p, "in": "path", "required": True,
                   "schema": {"type": "string", "format": "uuid"}}
                  for p in _path_params(op.path)]
        params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
                   for q in op.query]
        if params:
            entry["parameters"] = params
        entry["security"] = [{name: []} for name in op.auth] if op.auth else []
        if op.body is not None:
            entry["requestBody"] = {"required": False, "content": {
                op.body_media: {"schema": _schema(op.body, refs)}}}
        if op.result is None:
            entry["responses"][str(op.ok)] = {"description": "done"}
        else:
            body = _schema(op.result, refs)
            if op.wrap == "data":
                body = {"type": "object", "properties": {"data": body}, "required": ["data"]}
            elif op.wrap == "page":
                body = {"type": "object", "properties": {
                    "data": body, "next": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                    "required": ["data", "next"]}
            entry["responses"][str(op.ok)] = {
                "description": "success", "content": {op.media: {"schema": body}}}
        for code in op.errors:
            entry["responses"][str(code)] = {"description": "problem", "content": problem}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "converger", "version": __version__,
                 "description": "Multi-tenant conversation gateway."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _op_id(op: Op) -> str:
    words = [p.strip("{}") for p in op.path.split("/") if p and p not in ("api", "v1")]
    return op.method.lower() + "_" + "_".join(w.replace("-", "_") for w in words)


bp = Blueprint("openapi")


@bp.get("/api/openapi.json")
async def openapi(request: Request) -> HTTPResponse:
    return json(document())


def _extend() -> None:
    from .converger import openapi_ops

    OPERATIONS.extend(openapi_ops.operations(Op))


_extend()
