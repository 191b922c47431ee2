"""Connection limits, below HTTP: one client must not make the gateway unreachable (issue 13).

``GuardedProtocol`` (Sanic's HTTP/WebSocket protocol with three additions) is what
``gateway.server`` serves with:

* **per-IP cap** — an IP holding ``CONVERGER_MAX_CONNECTIONS_PER_IP`` open connections (HTTP
  or WebSocket) gets an immediate ``503`` and a close for the next one. Trusted proxies
  (``CONVERGER_TRUSTED_PROXIES``) are exempt: their clients are many; cap them at the proxy.
* **global cap with a reserve** — at most ``CONVERGER_MAX_CONNECTIONS`` (default: the file
  limit less a margin for the database, logs and uploads). The last
  ``CONVERGER_CONNECTION_RESERVE`` of them go only to IPs holding fewer than
  ``RESERVE_PER_IP`` connections, and to the admin allowlist: when one IP (or a few) fills the
  server, health checks and the admin panel from elsewhere still answer.
* **before routing** — ``app.ctx.before_routing`` (gateway/forms.py: HEAD, method overrides)
  runs for a ``POST`` or ``HEAD`` before Sanic routes the request.
* **WebSockets on the Sans-I/O layer** — a WebSocket route's upgrade is answered by
  ``websocket_handshake`` (the hook Sanic calls on its protocol) with ``gateway/wire.py``'s
  handshake; the socket then lives on this protocol's transport as a ``WireSocket`` (the
  ``websockets`` library's protocol, no task or queue per socket) after Sanic's request and
  connection task have ended.
* **whole-request deadlines** — Sanic's request timeout restarts with every byte, so a client
  sending a header line every few seconds holds its connection forever. Here a request's
  headers must be complete ``CONVERGER_HEADER_TIMEOUT`` seconds after its first byte, and its
  body ``CONVERGER_BODY_TIMEOUT`` seconds after that; otherwise 408 and a close.

``raise_file_limit()`` lifts the soft ``RLIMIT_NOFILE`` to the hard one at start-up.
"""

from __future__ import annotations

import resource
from collections import defaultdict
from time import monotonic
from typing import Any

from sanic.exceptions import RequestTimeout, SanicException
from sanic.http import Stage
from sanic.server.protocols.websocket_protocol import WebSocketProtocol

from . import ipallow
from .wire import Handler, HandshakeRefused, WireSocket, handshake

RESERVE_PER_IP = 4  # inside the reserve, an IP with fewer connections than this still gets one
FD_MARGIN = 128  # files kept for the database, its WAL, logs, uploads and outbound connections
_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n"
            b"retry-after: 5\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s")
_BODY = (b'{"type":"urn:converger:problem:too_many_connections","title":"Service Unavailable",'
         b'"status":503,"detail":"too many open connections from this address",'
         b'"code":"too_many_connections"}')
REFUSED = _REFUSED % (len(_BODY), _BODY)
_BEFORE_ROUTING = frozenset({"POST", "HEAD"})  # the methods ``ctx.before_routing`` may change


def raise_file_limit() -> int:
    """Soft ``RLIMIT_NOFILE`` up to the hard limit (where allowed); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class Limits:
    """Open connections per IP and in all, and the admission rule."""

    def __init__(self, *, total: int, per_ip: int, reserve: int, exempt: Any,
                 privileged: Any) -> None:
        self.total = total  # 0: no cap
        self.per_ip = per_ip  # 0: no cap
        self.reserve = reserve
        self.exempt = exempt  # networks not capped per IP (trusted proxies)
        self.privileged = privileged  # networks that may use the reserve (the admin allowlist)
        self.open = 0
        self.by_ip: defaultdict[str, int] = defaultdict(int)
        self.refused = 0

    @staticmethod
    def _within(ip: str, networks: Any) -> bool:
        return bool(networks) and ipallow.in_networks(ip, networks)

    def admit(self, ip: str | None) -> bool:
        if ip is None:  # a Unix socket: the operator's own
            self.open += 1
            return True
        held = self.by_ip.get(ip, 0)
        ok = True
        if self.per_ip and held >= self.per_ip and not self._within(ip, self.exempt):
            ok = False
        elif self.total:
            if self.open >= self.total:
                ok = False
            elif (self.open >= self.total - self.reserve and held >= RESERVE_PER_IP
                  and not self._within(ip, self.privileged)):
                ok = False
        if not ok:
            self.refused += 1
            return False
        self.open += 1
        self.by_ip[ip] = held + 1
        return True

    def release(self, ip: str | None) -> None:
        self.open -= 1
        if ip is None:
            return
        left = self.by_ip.get(ip, 1) - 1
        if left > 0:
            self.by_ip[ip] = left
        else:
            self.by_ip.pop(ip, None)


class GuardedProtocol(WebSocketProtocol):
    """Sanic's protocol, admitting connections through ``app.ctx.conn_limits`` and holding
    each request to its header and body deadlines (``app.ctx.request_deadlines``)."""

    __slots__ = ("_admitted", "_ip", "_deadline", "_began", "wire")

    def connection_made(self, transport: Any) -> None:
        self._admitted = False
        self.wire: WireSocket | None = None
        self._deadline = None
        self._began = 0.0
        peer = transport.get_extra_info("peername")
        self._ip = peer[0] if isinstance(peer, tuple) and peer else None
        limits: Limits | None = self.app.ctx.conn_limits
        if limits is not None and not limits.admit(self._ip):
            transport.write(REFUSED)
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self.request_handler = self._handle

    async def _handle(self, request: Any) -> None:
        # Method overrides and HEAD (gateway/forms.py); an error here is answered as one in
        # routing would be (Sanic's ``Http.error_response`` → ``app.handle_exception``).
        if request.method in _BEFORE_ROUTING:
            before = self.app.ctx.before_routing
            if before is not None:
                await before(request)
        await self.app.handle_request(request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        limits: Limits | None = self.app.ctx.conn_limits
        if limits is not None:
            limits.release(self._ip)
        super().connection_lost(exc)
        wire, self.wire = self.wire, None
        if wire is not None:
            wire.connection_lost()

    # -- WebSockets (gateway/wire.py) ------------------------------------------------------
    async def websocket_handshake(self, request: Any, subprotocols: Any = None) -> Upgraded:
        """Sanic's WebSocket route asks for the upgrade: the library checks the handshake and
        writes the 101; the socket is this connection's from now on (``self.wire``). The route
        handler gets an :class:`Upgraded` and attaches its handler to it."""
        try:
            proto, response = handshake(request.path, request.headers,
                                        self.websocket_max_size)
        except HandshakeRefused as exc:
            raise SanicException(str(exc) or "not a WebSocket handshake",
                                 status_code=exc.status) from None
        if self._deadline is not None:  # the request is complete: no header/body deadline
            self._deadline.cancel()
            self._deadline = None
        await self.send(response)
        assert self.transport is not None
        self.wire = WireSocket(self.loop, self.transport, proto)
        return Upgraded(self)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self.wire is not None:
            self.wire.data_received(data)
            return
        if self.websocket is None:
            http = getattr(self, "_http", None)  # a slot, set when the connection task runs
            if self._deadline is None and (http is None or http.stage is Stage.IDLE):
                self._arm()
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if not self._admitted:
            return False
        if self.wire is not None:
            self.wire.eof_received()
            return False  # the transport closes; connection_lost tells the socket
        return super().eof_received()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.wire is not None:
            self.wire.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.wire is not None:
            self.wire.resume_writing()

    def close(self, timeout: float | None = None) -> None:
        # Sanic's connection task ends once the WebSocket route's handler has returned; the
        # socket outlives it (it closes itself, and at shutdown through ``close_if_idle``).
        if self.wire is not None:
            return
        super().close(timeout)

    def close_if_idle(self) -> bool:
        # The server is shutting down: a socket says goodbye (1001) and closes when its client
        # answers; Sanic waits for that up to its graceful shutdown timeout, then aborts.
        if self.wire is not None:
            self.wire.close(1001, "server shutting down")
            return False
        return bool(super().close_if_idle())

    def _arm(self) -> None:
        header, _ = self.app.ctx.request_deadlines
        self._began = monotonic()
        self._deadline = self.loop.call_later(header, self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline = None
        http = getattr(self, "_http", None)
        if http is None or self.wire is not None or self._task is None:
            return
        header, body = self.app.ctx.request_deadlines
        elapsed = monotonic() - self._began
        if http.stage is Stage.REQUEST:  # the headers are not complete
            self._time_out(http)
        elif http.stage is Stage.HANDLER and http.request_body and not http.upgrade_websocket:
            if elapsed >= header + body:  # the body is not complete
                self._time_out(http)
            else:
                self._deadline = self.loop.call_later(header + body - elapsed,
                                                      self._check_deadline)
        elif http.stage is not Stage.IDLE and elapsed < header + body:
            # Handling (body read, or none): check again in case the body is still to come.
            self._deadline = self.loop.call_later(header + body - elapsed, self._check_deadline)

    def _time_out(self, http: Any) -> None:
        http.exception = RequestTimeout("Request Timeout")
        if self._task is not None:
            self._task.cancel("request deadline")


class Upgraded:
    """What a WebSocket route's handler gets from Sanic: the upgraded connection, until the
    handler attaches its own handler to the socket with :meth:`adopt` and returns. Sanic closes
    this object when the handler returns: a socket nobody adopted is closed then (1011)."""

    __slots__ = ("_proto",)

    def __init__(self, proto: GuardedProtocol) -> None:
        self._proto: GuardedProtocol | None = proto

    def adopt(self, handler: Handler) -> WireSocket:
        proto, self._proto = self._proto, None
        assert proto is not None and proto.wire is not None, "adopted twice, or already closed"
        # Bytes the client sent right behind its handshake request were read by the HTTP
        # parser: they are the socket's first frames.
        early = bytes(proto.recv_buffer)
        del proto.recv_buffer[:]
        proto.wire.adopt(handler, early)
        return proto.wire

    async def close(self, code: int = 1011, reason: str = "") -> None:
        self.end_connection(code, reason)

    def end_connection(self, code: int = 1011, reason: str = "") -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.wire is not None:
            proto.wire.fail_connection(code, reason or "no handler")

    def fail_connection(self, code: int = 1011, reason: str = "") -> None:
        self.end_connection(code, reason)


def install(app: Any) -> None:
    """``app.ctx.conn_limits`` and ``app.ctx.request_deadlines`` from the settings."""
    settings = app.ctx.settings
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    total = settings.max_connections or max(64, soft - FD_MARGIN)
    app.ctx.conn_limits = Limits(
        total=total, per_ip=settings.max_connections_per_ip,
        reserve=min(settings.connection_reserve, total // 2),
        exempt=ipallow.parse_networks(settings.trusted_proxies),
        privileged=ipallow.parse_networks(settings.admin_ip_whitelist),
    )
    app.ctx.request_deadlines = (float(settings.header_timeout), float(settings.body_timeout))
