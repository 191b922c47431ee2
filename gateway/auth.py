"""Who is asking: tenant API keys and tokens (the original's TenantAuth: ``x-api-key`` first,
else ``x-channel-token``), channel tokens, and admin API tokens for the management API. Secrets are compared as hashes or in constant time."""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

from sanic import Request

from store import admin_tokens, channels, conversations, tenants
from store.models import Channel, Tenant
from store.util import parse_iso

from . import errors
from .context import Gateway
from .crypto import equal, sha256_hex
from .domain import Actor, DomainError, Forbidden, NotFound, ValidationFailed, authz
from .tokens import TokenError, secret_version


async def tenant_auth(request: Request) -> tuple[Tenant, dict[str, Any] | None]:
    """TenantAuth: ``x-api-key`` first (no fallback), else ``x-channel-token``.

    Returns the tenant and, for token auth, the token's claims (to scope conversation tokens).
    """
    ctx = request.app.ctx
    headers = request.headers
    if "x-api-key" in headers:
        key_hash = sha256_hex(headers.get("x-api-key", ""))
        hit, tenant = ctx.tenant_cache.get(key_hash)  # the hot path: no read, no coroutine
        if not hit:
            tenant = await ctx.db.read(tenants.by_key_hash, key_hash)
            ctx.tenant_cache.put(key_hash, tenant)
        if tenant is None or not tenant.active:
            raise errors.unauthorized("Invalid or inactive API Key", "invalid_api_key", style="tenant")
        return tenant, None
    if "x-channel-token" in headers:
        try:
            claims = ctx.tokens.verify_legacy(headers.get("x-channel-token", ""))
        except TokenError:
            raise errors.unauthorized("Invalid token", "invalid_token", style="tenant") from None
        tenant_id = claims.get("tenant_id")
        if not isinstance(tenant_id, str):
            raise errors.unauthorized("Invalid token", "invalid_token", style="tenant")
        tenant = await ctx.db.read(tenants.get, tenant_id)
        if tenant is None:
            raise errors.unauthorized("Tenant not found", "tenant_not_found", style="tenant")
        if not tenant.active:
            raise errors.unauthorized("Tenant is not active", "tenant_inactive", style="tenant")
        if isinstance(claims.get("channel_id"), str):  # a channel's token: it must still hold
            channel = await ctx.db.read(channels.get_for_tenant, tenant_id, claims["channel_id"])
            refuse_channel(channel, claims)
        return tenant, claims
    raise errors.unauthorized("Missing authentication headers", "missing_credentials", style="tenant")


def token_scope(claims: dict[str, Any] | None) -> str | None:
    """The conversation a token is limited to, if it is a conversation (user) token."""
    if claims is None:
        return None
    cid = claims.get("conversation_id")
    return cid if isinstance(cid, str) else None


def check_scope(claims: dict[str, Any] | None, conversation_id: str) -> None:
    """A conversation token reaches only its conversation; elsewhere it sees 404 (no oracle)."""
    scope = token_scope(claims)
    if scope is not None and scope != conversation_id:
        raise errors.not_found()


def channel_refusal(channel: Channel | None, claims: dict[str, Any]) -> tuple[int, str, str] | None:
    """Why a token naming a channel no longer works, if it does not (issue 13): the channel
    was deleted, deactivated, or its secret rotated after the token was issued (``sv``)."""
    if channel is None:
        return 401, "invalid_token", "the token's channel no longer exists"
    if channel.status != "active":
        return 403, "channel_inactive", "the token's channel is inactive"
    sv = claims.get("sv")
    if sv is not None and sv != secret_version(channel):
        return 401, "token_revoked", "the channel's secret was rotated after this token was issued"
    if sv is None:  # issued before tokens carried `sv`: valid until the channel next changes
        iat = claims.get("iat")
        if isinstance(iat, int | float) and iat < int(parse_iso(channel.updated_at).timestamp()):
            return 401, "token_revoked", "the channel changed after this token was issued"
    return None


def refuse_channel(channel: Channel | None, claims: dict[str, Any], style: str = "tenant") -> None:
    refusal = channel_refusal(channel, claims)
    if refusal is None:
        return
    status, code, detail = refusal
    if status == 401:
        raise errors.unauthorized(detail, code, style=style)
    raise errors.forbidden(detail, code, style=style)


async def check_channel_scope(request: Request, tenant_id: str, claims: dict[str, Any] | None,
                              conversation_id: str) -> None:
    """A channel's token reaches only its channel's conversations; others are 404 (no oracle)."""
    if not claims or not is_channel_token(claims):
        return
    conv = await request.app.ctx.db.read(conversations.get_for_tenant, tenant_id, conversation_id)
    if conv is not None and conv.channel_id != claims["channel_id"]:
        raise errors.not_found()


def user_sender(claims: dict[str, Any] | None) -> str | None:
    """An end-user token (``POST /api/v1/tokens``: one conversation, one user, no channel)
    posts as its user: the ``sender`` it sends is ignored (issue 13, it could pose as
    "support-agent"). None for every other credential."""
    if not claims or claims.get("channel_id") is not None or claims.get("type") == "converger":
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub and token_scope(claims) else None


def is_channel_token(claims: dict[str, Any]) -> bool:
    """A token that speaks for a whole channel: it names a channel and a tenant and is not
    scoped to one conversation. (A Converger token scoped to a conversation also names its
    channel; taken as a channel token it would reach every conversation of the channel.)"""
    return (isinstance(claims.get("channel_id"), str) and isinstance(claims.get("tenant_id"), str)
            and claims.get("conversation_id") is None)


async def channel_from_token(request: Request) -> Channel:
    """``x-channel-token`` carrying a channel token → its channel (legacy conversation create)."""
    ctx = request.app.ctx
    token = request.headers.get("x-channel-token")
    if token is None:
        raise errors.bad_request("Missing x-channel-token header", "missing_channel_token", plain=True)
    try:
        claims = ctx.tokens.verify_legacy(token)
    except TokenError:
        raise errors.unauthorized("invalid channel token", "invalid_token") from None
    if not is_channel_token(claims):
        raise errors.unauthorized("not a channel token", "not_channel_token")
    channel_id, tenant_id = claims["channel_id"], claims["tenant_id"]
    channel = await ctx.db.read(channels.get_for_tenant, tenant_id, channel_id)
    if channel is None:
        raise errors.unauthorized("channel not found", "invalid_token")
    if channel.active:  # an inactive channel keeps its own answer (the routes say why)
        refuse_channel(channel, claims)
    return channel


def actor(request: Request) -> Actor:
    """Who is acting on this request, as the audit log names them: ``(type, id)``, set by
    whichever sign-in accepted the request (an admin API token, an admin or tenant user's
    session on the pages)."""
    who: Actor = request.ctx.actor
    return who


# -- the management API and the pages: which permission each route needs --------------------
R, W, D = "read", "write", "delete"
_A = "/api/admin"
# Every management route and admin/portal page, with the permission its role must grant
# (``authz.SELF``: anyone signed in). The permission matrix test is generated from this table;
# a route missing here is refused (tests/unit/gateway/test_route_permissions.py).
ROUTES: dict[tuple[str, str], str] = {
    ("GET", f"{_A}/tenants"): "tenants:read", ("POST", f"{_A}/tenants"): "tenants:write",
    ("GET", f"{_A}/tenants/{{tenant_id}}"): "tenants:read",
    ("PATCH", f"{_A}/tenants/{{tenant_id}}"): "tenants:write",
    ("DELETE", f"{_A}/tenants/{{tenant_id}}"): "tenants:delete",
    ("POST", f"{_A}/tenants/{{tenant_id}}/rotate-key"): "tenants:write",
    ("GET", f"{_A}/tenants/{{tenant_id}}/tier"): "tenants:read",
    ("PUT", f"{_A}/tenants/{{tenant_id}}/tier"): "settings:write",
    ("GET", f"{_A}/channels"): "channels:read", ("POST", f"{_A}/channels"): "channels:write",
    ("GET", f"{_A}/channels/{{channel_id}}"): "channels:read",
    ("PATCH", f"{_A}/channels/{{channel_id}}"): "channels:write",
    ("DELETE", f"{_A}/channels/{{channel_id}}"): "channels:delete",
    ("POST", f"{_A}/channels/{{channel_id}}/rotate-secret"): "channels:write",
    ("POST", f"{_A}/channels/{{channel_id}}/token"): "channels:write",
    ("POST", f"{_A}/channels/{{channel_id}}/actions/{{action}}"): "channels:write",
    ("GET", f"{_A}/channels/{{channel_id}}/templates"): "channels:read",
    ("GET", f"{_A}/conversations"): "conversations:read",
    ("POST", f"{_A}/conversations/{{conversation_id}}/close"): "conversations:write",
    ("POST", f"{_A}/conversations/{{conversation_id}}/reopen"): "conversations:write",
    ("GET", f"{_A}/deliveries"): "deliveries:read",
    ("POST", f"{_A}/deliveries/{{delivery_id}}/retry"): "deliveries:retry",
    ("GET", f"{_A}/routing_rules"): "routing_rules:read",
    ("POST", f"{_A}/routing_rules"): "routing_rules:write",
    ("PATCH", f"{_A}/routing_rules/{{rule_id}}"): "routing_rules:write",
    ("DELETE", f"{_A}/routing_rules/{{rule_id}}"): "routing_rules:delete",
    ("GET", f"{_A}/tenant_users"): "users:read", ("POST", f"{_A}/tenant_users"): "users:write",
    ("PATCH", f"{_A}/tenant_users/{{user_id}}"): "users:write",
    ("DELETE", f"{_A}/tenant_users/{{user_id}}"): "users:delete",
    ("GET", f"{_A}/health"): "health:read", ("GET", f"{_A}/alerts"): "health:read",
    ("GET", f"{_A}/audit"): "audit:read",
    ("GET", f"{_A}/users"): "admins:read", ("POST", f"{_A}/users"): "admins:write",
    ("GET", f"{_A}/users/{{user_id}}"): "admins:read",
    ("PATCH", f"{_A}/users/{{user_id}}"): "admins:write",
    ("DELETE", f"{_A}/users/{{user_id}}"): "admins:delete",
    ("GET", f"{_A}/tokens"): "tokens:read", ("POST", f"{_A}/tokens"): "tokens:write",
    ("DELETE", f"{_A}/tokens/{{token_id}}"): "tokens:delete",
    ("GET", f"{_A}/roles"): "roles:read", ("POST", f"{_A}/roles"): "roles:write",
    ("GET", f"{_A}/roles/{{role_id}}"): "roles:read",
    ("PATCH", f"{_A}/roles/{{role_id}}"): "roles:write",
    ("DELETE", f"{_A}/roles/{{role_id}}"): "roles:delete",
    ("GET", f"{_A}/tiers"): "settings:read", ("POST", f"{_A}/tiers"): "settings:write",
    ("GET", f"{_A}/tiers/{{tier_id}}"): "settings:read",
    ("PATCH", f"{_A}/tiers/{{tier_id}}"): "settings:write",
    ("DELETE", f"{_A}/tiers/{{tier_id}}"): "settings:delete",
    ("GET", f"{_A}/tls"): "settings:read", ("POST", f"{_A}/tls/renew"): "settings:write",
    ("GET", f"{_A}/analytics"): "analytics:read",
    ("GET", f"{_A}/analytics/export.csv"): "analytics:read",
    # -- the admin panel
    ("GET", "/admin"): "tenants:read",
    ("GET", "/admin/account"): authz.SELF, ("POST", "/admin/account/password"): authz.SELF,
    ("GET", "/admin/audit_logs"): "audit:read",
    ("GET", "/admin/tenants"): "tenants:read", ("POST", "/admin/tenants"): "tenants:write",
    ("POST", "/admin/tenants/{tenant_id}/delete"): "tenants:delete",
    ("POST", "/admin/tenants/{tenant_id}/rotate"): "tenants:write",
    ("POST", "/admin/tenants/{tenant_id}/status"): "tenants:write",
    ("POST", "/admin/tenants/{tenant_id}/webhook"): "tenants:write",
    ("GET", "/admin/channels"): "channels:read", ("POST", "/admin/channels"): "channels:write",
    ("GET", "/admin/channels/{channel_id}"): "channels:read",
    ("POST", "/admin/channels/{channel_id}"): "channels:write",
    ("POST", "/admin/channels/{channel_id}/actions/{action}"): "channels:write",
    ("POST", "/admin/channels/{channel_id}/delete"): "channels:delete",
    ("POST", "/admin/channels/{channel_id}/rotate"): "channels:write",
    ("POST", "/admin/channels/{channel_id}/status"): "channels:status",
    ("POST", "/admin/channels/{channel_id}/token"): "channels:write",
    ("POST", "/admin/channels/{channel_id}/verify_token"): "channels:write",
    ("GET", "/admin/tenant_users"): "users:read",
    ("POST", "/admin/tenant_users/invites"): "users:write",
    ("POST", "/admin/tenant_users/invites/{invite_id}/revoke"): "users:write",
    ("GET", "/admin/tiers"): "settings:read", ("POST", "/admin/tiers/assign"): "settings:write",
    ("POST", "/admin/tiers"): "settings:write", ("GET", "/admin/tiers/{tier_id}"): "settings:read",
    ("POST", "/admin/tiers/{tier_id}"): "settings:write",
    ("POST", "/admin/tiers/{tier_id}/delete"): "settings:delete",
    ("POST", "/admin/tenant_users/{user_id}/delete"): "users:delete",
    ("POST", "/admin/tenant_users/{user_id}/status"): "users:write",
    ("GET", "/admin/users"): "admins:read", ("POST", "/admin/users"): "admins:write",
    ("POST", "/admin/users/{user_id}/delete"): "admins:delete",
    ("POST", "/admin/users/{user_id}/password"): "admins:write",
    ("POST", "/admin/users/{user_id}/status"): "admins:write",
    ("GET", "/admin/tokens"): "tokens:read", ("POST", "/admin/tokens"): "tokens:write",
    ("POST", "/admin/tokens/{token_id}/revoke"): "tokens:delete",
    ("GET", "/admin/roles"): "roles:read", ("POST", "/admin/roles"): "roles:write",
    ("POST", "/admin/roles/{role_id}"): "roles:write",
    ("POST", "/admin/roles/{role_id}/delete"): "roles:delete",
    # -- pages of both areas (the portal's are within the user's own tenant)
    ("GET", "/portal"): "tenants:read", ("GET", "/portal/channels"): "channels:read",
    ("POST", "/portal/channels/{channel_id}/status"): "channels:status",
    ("GET", "/portal/channels/{channel_id}"): "channels:read",
    ("POST", "/portal/channels/{channel_id}"): "channels:write",
    ("POST", "/portal/channels/{channel_id}/verify_token"): "channels:write",
    ("GET", "/portal/tier"): "tenants:read",
    ("GET", "/portal/users"): "users:read", ("POST", "/portal/users/invites"): "users:write",
    ("POST", "/portal/users/invites/{invite_id}/revoke"): "users:write",
    ("POST", "/portal/users/{user_id}/delete"): "users:delete",
    ("POST", "/portal/users/{user_id}/status"): "users:write",
}
for _area in ("admin", "portal"):
    ROUTES.update({
        ("GET", f"/{_area}/conversations"): "conversations:read",
        ("GET", f"/{_area}/conversations/{{conversation_id}}"): "conversations:read",
        ("GET", f"/{_area}/conversations/{{conversation_id}}/timeline.json"): "conversations:read",
        ("GET", f"/{_area}/deliveries"): "deliveries:read",
        ("GET", f"/{_area}/deliveries/{{delivery_id}}"): "deliveries:read",
        ("POST", f"/{_area}/deliveries/{{delivery_id}}/retry"): "deliveries:retry",
        ("POST", f"/{_area}/deliveries/retry_failed"): "deliveries:retry",
        ("GET", f"/{_area}/health/events"): "health:read",
        ("GET", f"/{_area}/routing_rules"): "routing_rules:read",
        ("POST", f"/{_area}/routing_rules/{{rule_id}}/toggle"): "routing_rules:write",
        ("POST", f"/{_area}/logout"): authz.SELF,
        ("GET", f"/{_area}/analytics"): "analytics:read",
        ("GET", f"/{_area}/analytics.json"): "analytics:read",
        ("GET", f"/{_area}/analytics.csv"): "analytics:read",
        ("POST", f"/{_area}/channels/{{channel_id}}/test"): "channels:status",
    })
ROUTES[("POST", "/admin/routing_rules")] = "routing_rules:write"
ROUTES[("POST", "/admin/routing_rules/{rule_id}/delete")] = "routing_rules:delete"
# Routes that act on no one tenant's thing (a scoped role cannot use them).
WHOLE = frozenset({("POST", f"{_A}/tenants"), ("POST", "/admin/tenants")})
# The kind of thing each route parameter names (its tenant and channel are read to check the
# scope); ``user_id`` names a tenant user under ``tenant_users``/the portal, else an admin.
PARAM_KINDS = {"tenant_id": "tenants", "channel_id": "channels",
               "conversation_id": "conversations", "delivery_id": "deliveries",
               "rule_id": "routing_rules", "invite_id": "invites"}
_PARAM = re.compile(r"<([^:>]+)(:[^>]*)?>")


def route_key(request: Request) -> tuple[str, str]:
    """``(method, "/api/admin/channels/{channel_id}")``: the route as ROUTES names it."""
    route = request.route
    path = _PARAM.sub(r"{\1}", "/" + route.path.lstrip("/")) if route else request.path
    return request.method, path.rstrip("/") if path != "/" else path


def route_permission(request: Request) -> str | None:
    return ROUTES.get(route_key(request))


async def check_route(request: Request, who: authz.Principal, *, swap: bool = False) -> None:
    """The route's permission for ``who``, then, for a route naming one thing, its scope: the
    one authorisation step of every management route and page (refusals are audited).

    ``swap`` (the pages, checked before their handler runs): a thing outside the scope is
    replaced by an id no thing has, so the page answers exactly as for a missing one."""
    key = route_key(request)
    # A route nobody declared is refused to every role, never open by default.
    permission = ROUTES.get(key, "undeclared:route")
    gw = cast(Gateway, request.app.ctx)
    await authz.authorize(gw, who, permission, resource_id=key[1], whole=key in WHOLE)
    if not who.scoped:
        return
    params = request.match_info
    kinds = dict(PARAM_KINDS)
    if "tenant_users" in key[1] or key[1].startswith("/portal"):
        kinds["user_id"] = "users"
    for name, kind in kinds.items():
        if name not in params:
            continue
        try:
            await authz.authorize_thing(gw, who, permission, kind, str(params[name]))
        except NotFound:
            if not swap:
                raise
            value = params[name]
            params[name] = uuid.uuid4() if isinstance(value, uuid.UUID) else str(uuid.uuid4())


async def authorize_body_tenant(request: Request, who: authz.Principal, tenant_id: str,
                                permission: str) -> None:
    """A new thing for the tenant a body names: outside the scope, it answers as for a tenant
    that does not exist (422 ``tenant_id does not exist``); audited."""
    if authz.decide(who, permission, tenant_id=tenant_id) is None:
        return
    try:
        await authz.authorize(cast(Gateway, request.app.ctx), who, permission, tenant_id=tenant_id,
                              resource_id=tenant_id)
    except DomainError:
        raise ValidationFailed({"tenant_id": ["does not exist"]}) from None


async def report_scope(request: Request, who: authz.Principal, tenant_id: str | None,
                       channel_id: str | None) -> tuple[str | None, str | None]:
    """The tenant and channel a report (analytics) covers for ``who``: what was asked, within
    the scope (another tenant's or channel's answers as a missing one, 404); unnamed, the
    scope's one tenant (and channel), else 403 ``out_of_scope``: name one."""
    if not who.scoped:
        return tenant_id, channel_id
    gw = cast(Gateway, request.app.ctx)
    permission = route_permission(request) or "analytics:read"
    if tenant_id is None:
        if who.tenants is None or len(who.tenants) != 1:
            raise Forbidden("a tenant-scoped role names the tenant_id of its report",
                            "out_of_scope")
        (tenant_id,) = who.tenants
    await authz.authorize(gw, who, permission, tenant_id=tenant_id, resource_id=tenant_id,
                          channel_id=channel_id if who.channels is not None else None)
    if who.channels is not None and channel_id is None:
        if len(who.channels) != 1:
            raise Forbidden("a channel-scoped token names the channel_id of its report",
                            "out_of_scope")
        (channel_id,) = who.channels
        await authz.authorize(gw, who, permission, tenant_id=tenant_id, channel_id=channel_id)
    return tenant_id, channel_id


def tenant_ids(who: authz.Principal, requested: str | None) -> frozenset[str] | None:
    """The tenants a list may show for ``who`` (None: no limit beyond ``requested``)."""
    return authz.tenant_filter(who, requested) if who.scoped else None


def channel_ids(who: authz.Principal) -> frozenset[str] | None:
    return authz.channel_filter(who) if who.channels is not None else None


TOUCH_EVERY = 60.0  # seconds between two writes of a token's last use


async def admin_auth(request: Request) -> authz.Principal:
    """``Authorization: Bearer <admin API token>`` for the management API; then the route's
    permission and scope (``check_route``). Done once per request: by ``admin_guard`` before
    the handler on the management API's routes, else here."""
    if request.ctx.principal is not None:
        return request.ctx.principal
    return await _admin_auth(request, swap=False)


async def admin_guard(request: Request) -> None:
    """The management API's request middleware: ``admin_auth`` before the handler runs, so a
    thing outside the token's scope is swapped for a missing one (``check_route``) and the
    route answers exactly as it does for a missing thing, whatever it checks first."""
    await _admin_auth(request, swap=True)


async def _admin_auth(request: Request, *, swap: bool) -> authz.Principal:
    ctx = request.app.ctx
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise errors.unauthorized("missing or malformed Authorization header", "missing_credentials")
    token = header[len("Bearer "):].strip()
    principal: authz.Principal | None = None
    configured = ctx.settings.admin_token
    if configured and equal(token, configured):
        principal = authz.principal(Actor("admin_token", "env:CONVERGER_ADMIN_TOKEN"),
                                    "super_admin", authz.BUILTIN["super_admin"])
    elif token:
        def read(conn: Any) -> Any:
            row = admin_tokens.by_hash(conn, sha256_hex(token))
            return (row, authz.role_permissions(conn, row.role)) if row else None

        found = await ctx.db.read(read)
        if found is not None:
            row, permissions = found
            now = ctx.now_iso()
            if row.expires_at is not None and row.expires_at <= now:
                raise errors.unauthorized("this token has expired", "token_expired")
            last = row.last_used_at
            if last is None or (parse_iso(now) - parse_iso(last)).total_seconds() >= TOUCH_EVERY:
                await ctx.db.write(admin_tokens.touch, row.id, now)
            principal = authz.principal(Actor("admin_token", row.id), row.role, permissions,
                                        row.tenant_scope, row.channel_scope)
    if principal is None:
        raise errors.unauthorized("invalid admin token", "invalid_admin_token")
    request.ctx.actor = principal.actor
    request.ctx.principal = principal
    await check_route(request, principal, swap=swap)
    return principal
