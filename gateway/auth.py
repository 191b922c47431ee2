"""Who is asking: tenant API keys and tokens (the original's TenantAuth: ``x-api-key`` first,
else ``x-channel-token``), channel tokens, and admin API tokens for the management API. Secrets are compared as hashes or in constant time."""

from __future__ import annotations

from typing import Any

import msgspec
from sanic import Request

from store import admin_tokens, channels, conversations, tenants
from store.models import Channel, Tenant
from store.util import parse_iso

from . import errors
from .crypto import equal, sha256_hex
from .domain import Actor
from .tokens import TokenError, secret_version


class AdminPrincipal(msgspec.Struct, frozen=True):
    actor_type: str  # "admin_token" or "admin"
    actor_id: str
    role: str

    @property
    def actor(self) -> Actor:
        return Actor(self.actor_type, self.actor_id)

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "super_admin")


async def _tenant_by_key(request: Request, api_key: str) -> Tenant | None:
    ctx = request.app.ctx
    key_hash = sha256_hex(api_key)
    hit, tenant = ctx.tenant_cache.get(key_hash)
    if not hit:
        tenant = await ctx.db.read(tenants.by_key_hash, key_hash)
        ctx.tenant_cache.put(key_hash, tenant)
    return tenant


async def tenant_auth(request: Request) -> tuple[Tenant, dict[str, Any] | None]:
    """TenantAuth: ``x-api-key`` first (no fallback), else ``x-channel-token``.

    Returns the tenant and, for token auth, the token's claims (to scope conversation tokens).
    """
    ctx = request.app.ctx
    headers = request.headers
    if "x-api-key" in headers:
        tenant = await _tenant_by_key(request, headers.get("x-api-key", ""))
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


async def admin_auth(request: Request, *, write: bool = False) -> AdminPrincipal:
    """``Authorization: Bearer <admin API token>`` for the management API."""
    ctx = request.app.ctx
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise errors.unauthorized("missing or malformed Authorization header", "missing_credentials")
    token = header[len("Bearer "):].strip()
    principal: AdminPrincipal | None = None
    configured = ctx.settings.admin_token
    if configured and equal(token, configured):
        principal = AdminPrincipal("admin_token", "env:CONVERGER_ADMIN_TOKEN", "super_admin")
    elif token:
        row = await ctx.db.read(admin_tokens.by_hash, sha256_hex(token))
        if row is not None:
            principal = AdminPrincipal("admin_token", row.id, row.role)
    if principal is None:
        raise errors.unauthorized("invalid admin token", "invalid_admin_token")
    if write and not principal.can_write:
        raise errors.forbidden("this token is read-only", "read_only")
    request.ctx.actor = principal.actor
    return principal
