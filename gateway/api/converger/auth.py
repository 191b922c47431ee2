"""ConvergerAuth (docs/realtime.md): ``Authorization: Bearer`` with a channel secret (token
generation only) or a Converger token; then conversation scoping."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlencode

import msgspec
from sanic import Request

from store import channels, conversations, tenants
from store.models import Channel, Conversation

from ... import errors
from ...auth import refuse_channel
from ...crypto import sha256_hex
from ...http import gw, public_base, uuid_param
from ...tokens import TokenError

STREAM_PATH = "/socket/converger/websocket"


class Principal(msgspec.Struct):
    channel: Channel
    claims: dict[str, Any] | None  # None when authenticated by the channel secret
    mode: str  # "secret" or "token"

    @property
    def scope(self) -> str | None:
        cid = (self.claims or {}).get("conversation_id")
        return cid if isinstance(cid, str) else None

    @property
    def user(self) -> str | None:
        """The sender a Direct Line token is bound to (``tokens/generate`` with ``user.id``)."""
        uid = (self.claims or {}).get("user")
        return uid if isinstance(uid, str) else None


def channel_if_usable(channel: Channel | None, conn: sqlite3.Connection) -> Channel | None:
    """The channel when it and its tenant are active (a disabled tenant gets no access)."""
    if channel is None or not channel.active:
        return None
    tenant = tenants.get(conn, channel.tenant_id)
    return channel if tenant is not None and tenant.active else None


def channel_by_secret(conn: sqlite3.Connection, secret_hash: str) -> Channel | None:
    return channel_if_usable(channels.by_secret_hash(conn, secret_hash), conn)


def channel_by_id(conn: sqlite3.Connection, tenant_id: str, channel_id: str) -> Channel | None:
    return channel_if_usable(channels.get_for_tenant(conn, tenant_id, channel_id), conn)


async def authenticate(request: Request, *, secret_ok: bool = False) -> Principal:
    """Who is calling; 401/403 in the original's Converger error shape otherwise."""
    ctx = gw(request)
    header = request.headers.get("authorization", "")
    value = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
    if not value:
        raise errors.unauthorized("Missing or malformed Authorization header",
                                  "missing_credentials", style="converger")
    # A JWT has exactly two dots; a secret (``whsec_`` + Base64) has none, so only a value
    # that cannot be a token costs a secret lookup.
    if secret_ok and value.count(".") != 2:
        channel = await ctx.db.read(channel_by_secret, sha256_hex(value))
        if channel is not None:
            return Principal(channel, None, "secret")
    try:
        claims = ctx.tokens.verify_converger(value)
    except TokenError:
        raise errors.unauthorized("Invalid or expired token", "invalid_token",
                                  style="converger") from None
    channel_id, tenant_id = claims.get("channel_id"), claims.get("tenant_id")
    channel = None
    if isinstance(channel_id, str) and isinstance(tenant_id, str):
        channel = await ctx.db.read(channel_by_id, tenant_id, channel_id)
    if channel is None:
        raise errors.forbidden("Channel not found or inactive", "channel_inactive",
                               style="converger")
    refuse_channel(channel, claims, style="converger")  # its secret rotated since: revoked
    return Principal(channel, claims, "token")


async def conversation(request: Request, principal: Principal, conversation_id: str
                       ) -> Conversation:
    """The conversation this caller may use: a scoped token only its own (403 otherwise, as
    the original); an unscoped token those of its channel; anything else is 404."""
    conversation_id = uuid_param(conversation_id, "conversation_id")
    scope = principal.scope
    if scope is not None and scope != conversation_id:
        raise errors.forbidden("this token is scoped to another conversation", "out_of_scope")
    conv = await gw(request).db.read(
        conversations.get_for_tenant, principal.channel.tenant_id, conversation_id
    )
    if conv is None or conv.channel_id != principal.channel.id:
        raise errors.not_found()
    return conv


def stream_url(request: Request, token: str, conversation_id: str,
               watermark: str | None = None) -> str:
    """Where to open the socket, query properly encoded."""
    query: dict[str, str] = {"token": token, "conversation_id": conversation_id}
    if watermark:
        query["watermark"] = watermark
    return f"{public_base(request, websocket=True)}{STREAM_PATH}?{urlencode(query)}"
