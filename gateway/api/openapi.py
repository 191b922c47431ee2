"""The OpenAPI 3.1 document at ``/api/openapi.json``, generated from the msgspec schemas.

Every JSON route is listed in ``OPERATIONS`` with its auth and its error responses; a test
checks that every route the app serves under ``/api`` is described here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import msgspec
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from gateway import __version__
from store.models import AdminToken, Alert, AuditLog, Delivery
from store.users import AdminUser, TenantUser

from .. import versioning
from ..http import json
from ..shapes import public_struct
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
    also_ok: tuple[int, ...] = ()  # other success statuses, same answer schema
    headers: tuple[str, ...] = ()  # optional request headers the route reads


API_KEY = ("apiKey", "channelToken")
ADMIN = ("adminToken",)
CHANNEL = ("channelToken",)

TOKEN_OUT = {"type": "object", "properties": {"token": {"type": "string"},
             "expires_in": {"type": "integer"}}, "required": ["token", "expires_in"]}
STATUS_OUT = {"type": "object", "properties": {"status": {"type": "string"},
              "checks": {"type": "object"}}, "required": ["status"]}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
_S, _SN = {"type": "string"}, {"anyOf": [{"type": "string"}, {"type": "null"}]}
INBOUND_OUT: dict[str, Any] = {
    "type": "object", "description": "a message taken (activity ids), receipts applied, or "
    "messages ignored because they were addressed to a number no channel of the tenant has",
    "properties": {"status": {"enum": ["accepted", "ignored"]}, "activity_id": _S,
                   "conversation_id": _S, "activity_ids": {"type": "array", "items": _S},
                   "duplicate": {"type": "boolean"}, "receipts_processed": {"type": "integer"},
                   "ignored": {"type": "integer"}, "reason": _S},
    "required": ["status"],
}
# A provider's in-band check answered (Slack's url_verification), or what an inbound POST
# otherwise answers.
INBOUND_ANSWER: dict[str, Any] = {"anyOf": [INBOUND_OUT, {
    "type": "object", "properties": {"challenge": _S}, "required": ["challenge"]}]}
FETCHED_OUT: dict[str, Any] = {
    "type": "object", "description": "the stored file: GET its url with the same credentials",
    "properties": {"url": _S, "name": _S, "content_type": _S, "size": {"type": "integer"}},
    "required": ["url", "name", "content_type", "size"],
}
ACTION_OUT: dict[str, Any] = {
    "type": "object", "description": "the provider's answer to a channel management action",
    "properties": {"action": _S, "ok": {"const": True}, "result": {"type": "object"}},
    "required": ["action", "ok", "result"],
}
RECEIPTS_OUT: dict[str, Any] = {
    "type": "object", "properties": {"status": {"const": "accepted"},
                                     "receipts_processed": {"type": "integer"}},
    "required": ["status", "receipts_processed"],
}
HEALTH_OUT: dict[str, Any] = {
    "type": "object",
    "properties": {"channel_id": _S, "channel_name": _S, "tenant_id": _S, "type": _S, "status": _S,
                   "failure_rate": {"type": "number"}, "total_deliveries": {"type": "integer"},
                   "failed_deliveries": {"type": "integer"}, "checked_at": _S},
    "required": ["channel_id", "tenant_id", "status", "checked_at"],
}
ADMIN_TOKEN_CREATED: dict[str, Any] = {
    "type": "object",
    "properties": {"id": _S, "name": _S, "token_hint": _S, "role": _S, "created_by": _SN,
                   "last_used_at": _SN, "revoked_at": _SN, "inserted_at": _S, "token": _S},
    "required": ["id", "name", "role", "token"],
}


AlertView = public_struct(
    "AlertView", Alert, """A health alert as the management API shows it: ``body`` is the JSON
    text sent (and signed) on every attempt, ``id`` its ``webhook-id``.""")
DeliveryView = public_struct(
    "DeliveryView", Delivery,
    "A delivery as the management API shows it (the worker's claim token is left out).")


# The stable ``code`` of every problem, by status (tests/unit/gateway/test_problem_codes.py
# checks that every code the gateway raises is listed; the fuzzer validates answers against these).
CODES: dict[int, tuple[str, ...]] = {
    400: ("bad_request", "body_not_object", "body_required", "channel_inactive",
          "channel_outbound_only", "file_too_large", "invalid_cursor", "invalid_header",
          "invalid_idempotency_key", "invalid_interval", "invalid_range",
          "invalid_activity", "invalid_query", "invalid_user", "invalid_uuid", "invalid_watermark",
          "json_too_deep", "malformed_form", "malformed_json", "missing_type", "unknown_activity_type",
          "missing_channel_token", "missing_file", "not_downloadable", "missing_params", "missing_wrapper",
          "secret_required", "unknown_status_payload", "unparseable_inbound", "unsupported_vsn"),
    401: ("unauthorized", "token_revoked", "token_expired", "invalid_admin_token", "invalid_api_key", "invalid_signature",
          "invalid_token", "missing_credentials", "not_channel_token", "signature_required",
          "tenant_inactive", "tenant_not_found"),
    403: ("forbidden", "channel_inactive", "forbidden_role", "not_channel_token", "out_of_scope",
          "read_only", "tenant_inactive", "token_revoked", "token_out_of_scope", "invalid_token", "token_expired",
          "secret_required", "token_required"),
    404: ("not_found", "route_not_found", "unknown_action"),
    405: ("method_not_allowed",),
    406: ("not_acceptable",),
    408: ("request_timeout",),
    409: ("conflict", "constraint_failed", "conversation_closed", "not_retryable", "tier_limit_reached",
          "tls_not_acme", "last_super_admin", "role_in_use"),
    413: ("payload_too_large", "file_too_large", "activity_too_large", "storage_quota"),
    415: ("unsupported_media_type",),
    422: ("validation_failed",),
    429: ("rate_limited", "too_many_sockets"),
    500: ("internal_error", "http_error"),
    502: ("acme_failed", "provider_error"),
    503: ("unavailable", "http_error", "storage_unavailable", "too_many_connections"),
    507: ("storage_full",),
}

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
       s.ActivityOut, (400, 401, 404, 409, 413, 422, 429), headers=("x-idempotency-key",)),
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
    Op("GET", "/api/v1/channels/{channel_id}/inbound",
       "Provider verification challenge (Meta hub.challenge)", (),
       result={"type": "string"}, errors=(400, 403, 404, 429), wrap="",
       query=("hub.mode", "hub.verify_token", "hub.challenge"), media="text/plain"),
    Op("POST", "/api/v1/conversations/{conversation_id}/activities/{activity_id}/attachments/"
       "{index}/fetch", "Download an inbound attachment's file (Telegram file_id, Slack "
       "url_private) from its provider into the upload store (201; 200 when already there)",
       API_KEY, ok=201, result=FETCHED_OUT, errors=(400, 401, 404, 413, 429, 502),
       also_ok=(200,)),
    Op("POST", "/api/v1/channels/{channel_id}/inbound",
       "Inbound messages (201; 200 for a replay) or status receipts (200); Meta: "
       "X-Hub-Signature-256 when the channel has an app_secret; Slack's url_verification is "
       "answered with its challenge; payloads with nothing to store are acknowledged (200 ignored)",
       (), ANY_OBJECT, 201, INBOUND_ANSWER, (400, 401, 403, 404, 409, 413, 429), "",
       also_ok=(200,)),
    Op("POST", "/api/v1/channels/{channel_id}/status", "Delivery status receipts", (),
       ANY_OBJECT, 200, RECEIPTS_OUT, (400, 401, 403, 404, 413, 429), ""),
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
    Op("POST", "/api/admin/channels/{channel_id}/actions/{action}",
       "Run a channel type's management action (telegram: set_webhook, webhook_info, "
       "delete_webhook; slack: auth_test; whatsapp_meta, whatsapp_infobip: sync_templates); "
       "502 with the provider's message when it refuses",
       ADMIN, result=ACTION_OUT, errors=(400, 401, 403, 404, 502)),
    Op("GET", "/api/admin/channels/{channel_id}/templates",
       "The WhatsApp message templates last synced for the channel (name, language, status, "
       "category, components, synced_at)", ADMIN, result=[ANY_OBJECT], errors=(400, 401, 403, 404)),
    Op("GET", "/api/admin/conversations", "List conversations", ADMIN, result=[s.ConversationOut],
       errors=(400, 401), wrap="page", query=("tenant_id", "channel_id", "status", "limit", "cursor")),
    Op("POST", "/api/admin/conversations/{conversation_id}/close",
       "Close a conversation: no new activity is accepted (closing a closed one is a no-op)",
       ADMIN, result=s.ConversationOut, errors=(400, 401, 403, 404)),
    Op("POST", "/api/admin/conversations/{conversation_id}/reopen",
       "Reopen a closed conversation", ADMIN, result=s.ConversationOut,
       errors=(400, 401, 403, 404)),
    Op("GET", "/api/admin/users", "List admin users (who sign in to /admin)", ADMIN,
       result=[AdminUser], errors=(401,), wrap="page"),
    Op("POST", "/api/admin/users", "Create an admin user with a role and a tenant scope (permission admins:write)", ADMIN,
       s.AdminUserCreate, 201, AdminUser, (400, 401, 403, 422)),
    Op("GET", "/api/admin/users/{user_id}", "Show an admin user", ADMIN, result=AdminUser),
    Op("PATCH", "/api/admin/users/{user_id}",
       "Update an admin user: name, role, tenant scope, status, password (admins:write)", ADMIN,
       s.AdminUserPatch, 200, AdminUser, (400, 401, 403, 404, 409, 422)),
    Op("DELETE", "/api/admin/users/{user_id}", "Delete an admin user (admins:delete)",
       ADMIN, ok=204, errors=(400, 401, 403, 404, 409)),
    Op("GET", "/api/admin/tenant_users", "List tenant users (who sign in to /portal)", ADMIN,
       result=[TenantUser], errors=(400, 401), wrap="page", query=("tenant_id",)),
    Op("POST", "/api/admin/tenant_users", "Create a tenant user", ADMIN, s.TenantUserCreate, 201,
       TenantUser, (400, 401, 403, 422)),
    Op("PATCH", "/api/admin/tenant_users/{user_id}",
       "Update a tenant user: name, role, status, password", ADMIN, s.UserPatch, 200, TenantUser,
       (400, 401, 403, 404, 422)),
    Op("DELETE", "/api/admin/tenant_users/{user_id}", "Delete a tenant user", ADMIN, ok=204,
       errors=(400, 401, 403, 404)),
    Op("GET", "/api/admin/deliveries", "List deliveries", ADMIN, result=[DeliveryView],
       errors=(400, 401), wrap="page",
       query=("tenant_id", "channel_id", "activity_id", "status", "limit", "cursor")),
    Op("POST", "/api/admin/deliveries/{delivery_id}/retry", "Make a failed delivery due now",
       ADMIN, result=DeliveryView, errors=(400, 401, 403, 404, 409)),
    Op("GET", "/api/admin/audit", "Audit log", ADMIN, result=[AuditLog], errors=(400, 401),
       wrap="page", query=("tenant_id", "actor_type", "action", "resource_type", "resource_id",
                           "limit", "cursor")),
    Op("GET", "/api/admin/health", "Latest health check of each channel", ADMIN,
       result=[HEALTH_OUT], errors=(401,), wrap="page"),
    Op("GET", "/api/admin/alerts", "Health alerts queued for tenants' alert webhooks", ADMIN,
       result=[AlertView], errors=(400, 401), wrap="page",
       query=("tenant_id", "channel_id", "status", "limit", "cursor")),
    Op("GET", "/api/admin/tls", "HTTPS: the served certificate, its renewals (docs/deploy.md)",
       ADMIN, result=ANY_OBJECT, errors=(401,)),
    Op("POST", "/api/admin/tls/renew", "HTTPS: obtain a new ACME certificate now and swap it in",
       ADMIN, result=ANY_OBJECT, errors=(401, 403, 409, 502)),
    Op("GET", "/api/admin/routing_rules", "List routing rules of every tenant", ADMIN,
       result=[s.RoutingRuleOut], errors=(400, 401), wrap="page", query=("tenant_id",)),
    Op("POST", "/api/admin/routing_rules", "Create a routing rule for a tenant", ADMIN,
       ANY_OBJECT, 201, s.RoutingRuleOut, (400, 401, 403, 422)),
    Op("PATCH", "/api/admin/routing_rules/{rule_id}", "Update a routing rule", ADMIN,
       s.RoutingRuleFields, 200, s.RoutingRuleOut, (400, 401, 403, 404, 422)),
    Op("DELETE", "/api/admin/routing_rules/{rule_id}", "Delete a routing rule", ADMIN, ok=204,
       errors=(400, 401, 403, 404)),
    Op("GET", "/api/admin/tokens", "List admin API tokens", ADMIN, result=[AdminToken],
       errors=(401,), wrap="page"),
    Op("POST", "/api/admin/tokens", "Create an admin API token (shown once) with a role, a tenant and channel scope and an expiry", ADMIN,
       s.AdminTokenCreate, 201, ADMIN_TOKEN_CREATED, (400, 401, 403, 422)),
    Op("DELETE", "/api/admin/tokens/{token_id}", "Revoke an admin API token", ADMIN, ok=204,
       errors=(400, 401, 403, 404)),
]

SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
               "description": "the tenant's API key (shown once, at creation or rotation)"},
    "channelToken": {"type": "apiKey", "in": "header", "name": "x-channel-token",
                     "description": "a legacy JWT: a channel token (from the management API), "
                                    "or a conversation (user) token, which reaches only its "
                                    "conversation"},
    "adminToken": {"type": "http", "scheme": "bearer",
                   "description": "an admin API token (CONVERGER_ADMIN_TOKEN or one made with "
                                  "POST /api/admin/tokens); a role (super_admin, admin, viewer or a custom role), limited to tenants and channels and "
                                  "to a time when made so (docs/admin.md#roles-and-scopes)"},
    "convergerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                       "description": "a Converger token: unscoped (its channel) or scoped to "
                                      "one conversation"},
    "channelSecret": {"type": "http", "scheme": "bearer",
                      "description": "the channel's secret (shown once); only to generate a "
                                     "Converger token"},
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


def document(deprecated: Iterable[versioning.Deprecation] = ()) -> dict[str, Any]:
    """Build the OpenAPI document; ``deprecated`` routes are marked so (docs/api-versioning.md)."""
    marked = {versioning.route_key(d.method, d.path): d for d in deprecated}
    types: set[Any] = {Problem}
    for op in OPERATIONS:
        _collect(op.body, types)
        _collect(op.result, types)
    ordered = sorted(types, key=lambda t: t.__name__)
    refs_list, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    refs = dict(zip(ordered, refs_list, strict=True))
    problem_ref = refs[Problem]
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {"summary": op.summary, "operationId": _op_id(op),
                                 "responses": {}}
        params = [{"name": p, "in": "path", "required": True,
                   "schema": {"type": "string"} if p == "file_name"
                   else {"type": "string", "format": "uuid"}}
                  for p in _path_params(op.path)]
        params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
                   for q in op.query]
        params += [{"name": h, "in": "header", "required": False,
                    "schema": {"type": "string", "maxLength": 255}} for h in op.headers]
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
        for extra in op.also_ok:
            entry["responses"][str(extra)] = entry["responses"][str(op.ok)]
        # Any request can carry a header that is not UTF-8 (400), any /api request an Accept
        # the API cannot answer (406), and any write can meet a full or failing disk (507, 503).
        always = ({400} | ({406} if op.path.startswith("/api/") else set())
                  | ({503, 507} if op.method != "GET" else set()))
        for code in sorted(set(op.errors) | always):
            entry["responses"][str(code)] = {"description": "problem: code one of " + ", ".join(
                CODES[code]), "content": {"application/problem+json": {"schema": {
                    "allOf": [problem_ref, {"properties": {"code": {"enum": list(CODES[code])}}}]}}}}
        mark = marked.get(versioning.route_key(op.method, op.path))
        if mark is not None:
            entry["deprecated"] = True
            entry["x-deprecated-since"] = mark.since.isoformat()
            if mark.sunset is not None:
                entry["x-sunset"] = mark.sunset.isoformat()
        for answer in entry["responses"].values():
            answer["headers"] = {versioning.HEADER: {"description": "the API version answering",
                                                     "schema": {"type": "string"}}}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "converger", "version": __version__,
                 "x-api-version": versioning.API_VERSION,
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
    return json(document(versioning.deprecations(request.app.ctx.settings.deprecated_routes)))


def _extend() -> None:
    from .converger import openapi_ops

    OPERATIONS.extend(openapi_ops.operations(Op))
    from .manage import roles, tiers

    OPERATIONS.extend(tiers.operations(Op, ADMIN))
    from . import analytics

    OPERATIONS.extend(analytics.operations(Op, ADMIN, API_KEY))
    OPERATIONS.extend(roles.operations(Op, ADMIN))
    # Any management route may refuse a role that lacks its permission or a scope that does
    # not reach it (403), and an expired token (401).
    for i, op in enumerate(OPERATIONS):
        if op.auth == ADMIN:
            OPERATIONS[i] = op._replace(errors=tuple(sorted({*op.errors, 401, 403})))


_extend()
