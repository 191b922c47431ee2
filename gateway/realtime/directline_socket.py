"""``/v3/directline/conversations/<id>/stream``: Direct Line 3.0's stream, a plain WebSocket
(no Phoenix framing) as ``botframework-directlinejs`` and Web Chat open it from ``streamUrl``.

* The token is in the URL (``t``, or ``token``); checked before the upgrade: invalid or expired
  → HTTP 403, another conversation → 403, a watermark not of this conversation → 400, all in
  Direct Line's error shape.
* On open, everything after ``watermark`` is replayed — from the start when there is none (the
  client posts before its socket opens) — then each new activity follows live. Every frame is a
  raw ActivitySet ``{"activities": [...], "watermark": "..."}``. Typing indicators are live only.
* The server sends an empty frame every third of ``CONVERGER_WS_IDLE_TIMEOUT``; any client frame
  (the client's own keep-alive is an empty one) counts as liveness, and its content is ignored.
  Silence for ``CONVERGER_WS_IDLE_TIMEOUT`` closes the socket (the client reconnects with its
  watermark and misses nothing).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from functools import partial
from time import monotonic
from typing import Any

import msgspec
from sanic import Request
from sanic.response import HTTPResponse

from store import activities, channels, conversations, tenants

from .. import errors
from ..auth import channel_refusal
from ..http import public_base
from ..hub import Encoder
from ..shapes import decode_watermark, directline_activity, encode_watermark
from ..tokens import TokenError, TokenExpired
from .connection import CLOSE_NORMAL, SWEEP_FRACTION, Channel, Connection, Router, compact
from .replay import load

log = logging.getLogger("converger.socket")
PATH = re.compile(r"^/v3/directline/conversations/([^/]+)/stream$")
REPLAY_CHUNK = 500
_encode = msgspec.json.Encoder().encode


def activity_set(items: Sequence[Any], url: Callable[[str], str]) -> str:
    return _encode({"activities": [directline_activity(a, url) for a in items],
                    "watermark": encode_watermark(items[-1].id)}).decode()


_encoders: dict[str, Encoder] = {}


def encoder_for(base: str, tokens: Any) -> Encoder:
    """One encoder per public base URL (signed upload URLs are absolute), shared by every
    stream on it: the hub encodes a frame once per encoder."""
    enc = _encoders.get(base)
    if enc is None:
        def url(path: str) -> str:
            return str(tokens.signed_upload_url(base, path))

        def encode(topic: str, event: str, payload: Any) -> str | None:
            return activity_set([payload], url) if event == "new_activity" else None

        enc = _encoders[base] = encode
    return enc


class DirectLineRouter(Router):
    kind = "directline"


ROUTER = DirectLineRouter()


def _refuse(status: int, code: str, detail: str, dl_code: str = "BadArgument") -> HTTPResponse:
    return errors.problem_response(errors.directline(status, code, detail, dl_code))


def _check(conn: Any, tenant_id: str, claims: dict[str, Any], conversation_id: str,
           anchor: str | None) -> str | None:
    """Why this stream may not open (None when it may)."""
    channel_id = claims.get("channel_id")
    tenant = tenants.get(conn, tenant_id)
    if tenant is None or not tenant.active:
        return "tenant"
    channel = channels.get(conn, channel_id) if isinstance(channel_id, str) else None
    if channel is None or channel.tenant_id != tenant_id or channel_refusal(channel, claims):
        return "channel"  # deleted, inactive, or its secret rotated since the token was issued
    conv = conversations.get_for_tenant(conn, tenant_id, conversation_id)
    if conv is None or conv.channel_id != channel_id:
        return "conversation"
    if anchor is not None:
        row = activities.get(conn, anchor)
        if row is None or row.conversation_id != conversation_id:
            return "watermark"
    return None


async def authenticate(request: Request, match: re.Match[str]) -> HTTPResponse | None:
    """Before the upgrade: the token, its scope, the conversation and the watermark."""
    ctx = request.app.ctx
    conversation_id = match.group(1).lower()
    token = request.args.get("t") or request.args.get("token") or ""
    try:
        claims = ctx.tokens.verify_converger(token)
    except TokenExpired:
        return _refuse(403, "token_expired", "Token expired", "TokenExpired")
    except TokenError:
        return _refuse(403, "invalid_token", "Invalid token or secret")
    tenant_id, scope = claims.get("tenant_id"), claims.get("conversation_id")
    if not isinstance(tenant_id, str) or (isinstance(scope, str) and scope != conversation_id):
        return _refuse(403, "out_of_scope", "Token not valid for this conversation")
    wm = request.args.get("watermark") or None
    anchor = decode_watermark(wm) if wm else None
    if wm and anchor is None:
        return _refuse(400, "invalid_watermark", "watermark is not a watermark")
    why = await ctx.db.read(_check, tenant_id, claims, conversation_id, anchor)
    if why == "tenant":
        return _refuse(403, "tenant_inactive", "The tenant is not active")
    if why == "channel":
        return _refuse(403, "token_revoked",
                       "The token's channel is gone, inactive, or its secret was rotated")
    if why == "conversation":
        return _refuse(404, "not_found", "Conversation not found")
    if why == "watermark":
        return _refuse(400, "invalid_watermark",
                       "watermark does not name an activity of this conversation")
    request.ctx.claims = compact(claims)  # kept as long as the socket: its strings shared
    request.ctx.token = token
    request.ctx.dl = (conversation_id, anchor)
    return None


class DirectLineStream(Connection):
    """A :class:`Connection` (bounded send queue, drop when too slow) that speaks raw
    ActivitySets instead of Phoenix frames, and has one subscription from the start. The idle
    sweep also sends its keep-alive frames."""

    __slots__ = ("conversation_id", "anchor", "url", "encoder", "kept_alive")

    def __init__(self, request: Request) -> None:
        super().__init__(request.app, ROUTER, request.ctx.claims, "directline")
        self.conversation_id, self.anchor = request.ctx.dl
        tokens = request.app.ctx.tokens
        base = public_base(request)
        self.url: Callable[[str], str] = partial(_signed_url, tokens, base)
        self.encoder = encoder_for(base, tokens)
        self.kept_alive = monotonic()  # when the last keep-alive frame was sent

    def start(self, upgraded: Any) -> None:
        super().start(upgraded)
        task = asyncio.create_task(self._start(), name="dl-replay")
        _replays.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(_replays.discard)

    async def _start(self) -> None:
        """Subscribe, then read the replay (nothing committed in between is lost), then go live
        (nothing the replay sent is repeated: ``Channel`` skips seqs already sent)."""
        topic = f"directline:{self.conversation_id}"
        channel = Channel(self, topic, self.conversation_id, None, self.encoder)
        self.channels[topic] = channel
        self.hub.subscribe(channel.hub_topic, channel)
        ctx = self.app.ctx
        try:
            _, replay, after_seq = await ctx.db.read(
                load, self.claims["tenant_id"], self.conversation_id, self.anchor, True,
                ctx.settings.activity_list_cap)
        except Exception:
            log.exception("direct line replay failed")
            self.abort(1011, "replay failed")
            return
        if self._closed:
            return
        if replay:
            after_seq = max(after_seq, replay[-1].seq)
        shown = [a for a in replay if a.type != "typing"]  # stale indicators are not replayed
        for i in range(0, len(shown), REPLAY_CHUNK):
            self.offer(activity_set(shown[i:i + REPLAY_CHUNK], self.url), force=True)
        channel.release(after_seq)

    def tick(self, now: float) -> None:
        """The idle sweep's look: the close when the client has been silent for the whole
        timeout, else a keep-alive frame every third of it."""
        if now - self._last >= self.idle_timeout:
            self.close(CLOSE_NORMAL, "idle timeout")
        elif now - self.kept_alive >= self.idle_timeout * (1 / 3 - SWEEP_FRACTION / 2):
            # (every other sweep: a third of the timeout, give or take the timer's rounding)
            self.kept_alive = now
            self.offer("")

    def on_message(self, raw: str | bytes) -> None:
        # Any frame is liveness; Direct Line clients send nothing else that matters.
        self._last = monotonic()


_replays: set[asyncio.Task[None]] = set()


def _signed_url(tokens: Any, base: str, path: str) -> str:
    return str(tokens.signed_upload_url(base, path))
