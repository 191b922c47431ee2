"""Who calls the Direct Line mount: ``Authorization: Bearer`` with the channel's secret (on
every route, as Direct Line allows) or a Converger token. A token that is invalid or expired is
a 403 (``TokenExpired`` when it had been valid): the official client recovers from 403 only."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from sanic import Request

from store import activities
from store.models import Conversation

from ... import errors
from ...crypto import sha256_hex
from ...http import gw, public_base
from ...shapes import decode_watermark
from ...tokens import TokenError, TokenExpired
from ..converger.auth import Principal, channel_by_id, channel_by_secret

PREFIX = "/v3/directline"


def _invalid() -> errors.ApiError:
    return errors.directline(403, "invalid_token", "Invalid token or secret")


async def authenticate(request: Request) -> Principal:
    ctx = gw(request)
    header = request.headers.get("authorization", "")
    value = header[len("Bearer "):].strip() if header[:7].lower() == "bearer " else ""
    if not value:
        raise errors.directline(401, "missing_credentials", "Missing token or secret")
    # A JWT has exactly two dots; a secret (``whsec_`` + Base64) has none.
    if value.count(".") != 2:
        channel = await ctx.db.read(channel_by_secret, sha256_hex(value))
        if channel is None:
            raise _invalid()
        return Principal(channel, None, "secret")
    try:
        claims = ctx.tokens.verify_converger(value)
    except TokenExpired:
        raise errors.directline(403, "token_expired", "Token expired", "TokenExpired") from None
    except TokenError:
        raise _invalid() from None
    channel_id, tenant_id = claims.get("channel_id"), claims.get("tenant_id")
    channel = None
    if isinstance(channel_id, str) and isinstance(tenant_id, str):
        channel = await ctx.db.read(channel_by_id, tenant_id, channel_id)
    if channel is None:
        raise _invalid()
    return Principal(channel, claims, "token")


async def watermark_anchor(request: Request, conv: Conversation, wm: str | None) -> str | None:
    """The activity a watermark names, checked to be in this conversation (a watermark from
    another conversation, or one that is not a watermark, is a 400); None for none."""
    if not wm:
        return None
    anchor = decode_watermark(wm)
    row = await gw(request).db.read(activities.get, anchor) if anchor else None
    if row is None or row.conversation_id != conv.id:
        raise errors.directline(400, "invalid_watermark",
                                "watermark does not name an activity of this conversation")
    return anchor


def stream_url(request: Request, token: str, conversation_id: str,
               watermark: str | None = None) -> str:
    """``wss://…/v3/directline/conversations/<id>/stream?watermark=…&t=<token>``."""
    query = {"watermark": watermark} if watermark else {}
    query["t"] = token
    return (f"{public_base(request, websocket=True)}{PREFIX}/conversations/{conversation_id}"
            f"/stream?{urlencode(query)}")


def upload_url(request: Request) -> Callable[[str], str]:
    """Turns a stored upload path into an absolute signed URL (for ``directline_activity``)."""
    base, tokens = public_base(request), gw(request).tokens
    return lambda path: tokens.signed_upload_url(base, path)
