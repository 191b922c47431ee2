"""Real-time: the Phoenix Channels sockets (docs/realtime.md), the hub broadcast, and the JS client.

``install(app)`` registers ``/socket/websocket`` (legacy), ``/socket/converger/websocket``
(Converger), ``/v3/directline/conversations/<id>/stream`` (Direct Line), ``/static/converger.js`` (+ a demo page), and the broadcast of every newly
committed activity on ``ctx.on_activity``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse

from store import channels

from .. import errors, tiersockets
from ..auth import channel_refusal
from ..tokens import TokenError
from . import directline_socket, phoenix
from .connection import Connection, Router, compact
from .converger_socket import ConvergerRouter
from .legacy_socket import LegacyRouter

STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {"converger.js": "text/javascript; charset=utf-8",
                "demo.html": "text/html; charset=utf-8"}

bp = Blueprint("realtime")
LEGACY, CONVERGER = LegacyRouter(), ConvergerRouter()
PATHS: dict[str, Router] = {"/socket/websocket": LEGACY, "/socket/converger/websocket": CONVERGER}


def _refuse(status: int, code: str, detail: str) -> HTTPResponse:
    return errors.problem_response(errors.ApiError(status, code, detail))


@bp.on_request
async def _authenticate(request: Request) -> HTTPResponse | None:
    """Before the upgrade: a bad or missing token is refused with HTTP 403 (the original's
    socket ``connect`` error), an unknown serializer with 400."""
    router = PATHS.get(request.path)
    if router is None:
        match = directline_socket.PATH.match(request.path)
        if match is None:
            return None
        refused = await directline_socket.authenticate(request, match)
        refused = refused or _capped(request, request.ctx.token, directline=True)
        return refused or await tiersockets.admit(request, request.ctx.claims["tenant_id"],
                                                  directline=True)
    vsn = request.args.get("vsn") or phoenix.V1
    if vsn not in phoenix.VERSIONS:
        return _refuse(400, "unsupported_vsn", f"vsn must be one of {', '.join(phoenix.VERSIONS)}")
    tokens = request.app.ctx.tokens
    token = request.args.get("token") or ""
    try:
        claims = (tokens.verify_converger(token) if router is CONVERGER
                  else tokens.verify_legacy(token))
    except TokenError:
        return _refuse(403, "invalid_token", "a valid token is required to connect")
    if not isinstance(claims.get("tenant_id"), str):
        return _refuse(403, "invalid_token", "the token names no tenant")
    if isinstance(claims.get("channel_id"), str):  # its channel must still hold (issue 13)
        channel = await request.app.ctx.db.read(channels.get_for_tenant, claims["tenant_id"],
                                                claims["channel_id"])
        if (why := channel_refusal(channel, claims)) is not None:
            return _refuse(403, why[1], why[2])  # a socket refusal is 403, as the original
    refused = _capped(request, token) or await tiersockets.admit(request, claims["tenant_id"])
    if refused is not None:
        return refused
    request.ctx.claims = compact(claims)  # kept as long as the socket: its strings shared
    request.ctx.vsn = phoenix.VERSIONS[phoenix.VERSIONS.index(vsn)]  # the shared constant
    return None


def _capped(request: Request, token: str, directline: bool = False) -> HTTPResponse | None:
    """429 when this token already has its ``CONVERGER_MAX_SOCKETS_PER_TOKEN`` sockets open
    (in the whole gateway: with worker processes, summed over them all). Otherwise the socket's
    place is taken now, before the handshake, so that a connection landing on another process
    meanwhile sees it; ``_serve`` gives it back when the socket closes, ``_unreserve`` when the
    request ends without one (a failed handshake, a later refusal)."""
    ctx = request.app.ctx
    cap = ctx.settings.max_sockets_per_token
    # The socket holds this key while it is open: a digest of the token (interned, shared by
    # the token's sockets), not the token itself (memory per idle socket, issue 14).
    request.ctx.socket_key = sys.intern(hashlib.blake2b(token.encode(), digest_size=16).hexdigest())
    if cap:
        if not ctx.socket_cap.reserve(request.ctx.socket_key, cap):
            detail = f"at most {cap} open sockets per token"
            if directline:
                return errors.problem_response(
                    errors.directline(429, "too_many_sockets", detail, "TooManyRequests"))
            return _refuse(429, "too_many_sockets", detail)
        request.ctx.socket_reserved = True
    return None


@bp.on_response
async def _unreserve(request: Request, response: HTTPResponse) -> None:
    """An HTTP answer instead of a socket: the place taken by ``_capped`` is free again."""
    if request.ctx.socket_reserved:
        request.ctx.socket_reserved = False
        request.app.ctx.socket_cap.add(request.ctx.socket_key, -1)
    if request.ctx.tier_socket is not None:  # the same for the tier's max_connections
        await tiersockets.release(request, tiersockets.take(request))


def _socket_gauge() -> Callable[[int], None]:
    """``metrics.ws_connected`` (the open-sockets gauge) when the metrics module is there."""
    try:
        from ..metrics import ws_connected  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # a build without the metrics area
        return lambda delta: None
    return ws_connected  # type: ignore[no-any-return,unused-ignore]


_gauge = _socket_gauge()


def _serve(request: Request, upgraded: Any, router: Router | None) -> None:
    """The upgrade is done: the socket's connection takes it over, and the handler returns.
    From here on the socket costs no task while it idles; what it holds of the caps is given
    back by ``_ended`` when it closes."""
    if router is not None:
        conn = Connection(request.app, router, request.ctx.claims, request.ctx.vsn,
                          request.args.get("watermark"))
    else:
        conn = directline_socket.DirectLineStream(request)
    counts: dict[str, int] = request.app.ctx.socket_counts
    key = request.ctx.socket_key
    counts[key] = counts.get(key, 0) + 1
    reserved = request.ctx.socket_reserved
    request.ctx.socket_reserved = False  # this socket holds the place now
    # ... and its tenant's (gateway/tiersockets.py)
    conn.seat = (key, reserved, tiersockets.take(request))
    conn.on_end = _ended
    _gauge(1)
    conn.start(upgraded)


def _ended(conn: Connection) -> None:
    key, reserved, tier_tenant = conn.seat
    ctx = conn.app.ctx
    if tier_tenant is not None:
        tiersockets.release_later(conn.app, tier_tenant)
    _gauge(-1)
    if reserved:
        ctx.socket_cap.add(key, -1)
    counts: dict[str, int] = ctx.socket_counts
    if (left := counts.get(key, 1) - 1) > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


@bp.websocket("/socket/websocket")
async def legacy_socket(request: Request, ws: Any) -> None:
    _serve(request, ws, LEGACY)


@bp.websocket("/socket/converger/websocket")
async def converger_socket(request: Request, ws: Any) -> None:
    _serve(request, ws, CONVERGER)


@bp.websocket("/v3/directline/conversations/<conversation_id>/stream")
async def directline_stream(request: Request, ws: Any, conversation_id: str) -> None:
    _serve(request, ws, None)


def _page_headers(body: bytes) -> dict[str, str]:
    """The demo page gets the headers the admin pages have (issue 13): its inline script is
    allowed by its hash, nothing else inline; no framing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(body))
    return {
        "content-security-policy": f"default-src 'self'; script-src 'self' {hashes}; style-src "
                                   "'self' 'unsafe-inline'; img-src 'self' data:; connect-src "
                                   "'self'; frame-ancestors 'none'; form-action 'self'; "
                                   "base-uri 'none'",
        "x-frame-options": "DENY",
        "referrer-policy": "same-origin",
    }


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def _static_route(name: str, ctype: str) -> None:
    """One fixed route per file (not a /static directory route another area may own)."""

    async def handler(request: Request) -> HTTPResponse:
        cache = request.app.ctx.static_cache
        body = cache.get(name)
        if body is None:
            body = cache[name] = (STATIC / name).read_bytes()
        headers = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
        if name.endswith(".html"):
            headers.update(_page_headers(body))
        return HTTPResponse(body, content_type=ctype, headers=headers)

    bp.add_route(handler, f"/static/{name}", methods=["GET"], name=f"static_{name.replace('.', '_')}")


for _name, _ctype in STATIC_FILES.items():
    _static_route(_name, _ctype)


def install(app: Sanic) -> None:
    """Register the sockets, the static client and the broadcast of new activities."""
    settings = app.ctx.settings
    app.config.WEBSOCKET_MAX_SIZE = settings.ws_max_frame_bytes
    # The sockets run on the websockets library's Sans-I/O protocol (gateway/wire.py), not on
    # Sanic's WebSocket layer: no task, queue or timer per idle socket (docs/performance.md §6).
    # No protocol-level pings: a Phoenix socket closes when its client's heartbeats stop
    # (CONVERGER_WS_IDLE_TIMEOUT), a Direct Line stream sends its keep-alive frames; the setting
    # stays off should a route ever use Sanic's layer.
    app.config.WEBSOCKET_PING_INTERVAL = None
    app.ctx.static_cache = {}
    app.ctx.socket_counts = {}  # token digest -> open sockets (CONVERGER_MAX_SOCKETS_PER_TOKEN)
    cluster = app.ctx.cluster
    if cluster is not None:  # the cap holds for the whole gateway
        from ..sharedlimit import SharedCounts

        app.ctx.socket_cap = SharedCounts(cluster.run_dir / "sockets", cluster.slot, cluster.size)
    tiersockets.install(app)
    app.ctx.on_activity.append(app.ctx.hub.activity_hook)
    app.blueprint(bp)
