"""A WebSocket after its handshake, on the connection's own transport: the ``websockets``
library's Sans-I/O protocol (``ServerProtocol``: framing, masking, ping/pong, the closing
handshake, the message size limit) fed with the bytes the transport receives, and its output
written back. Nothing else exists per socket while it idles — no task, no queue, no asyncio
primitive — which is what brings the gateway's memory per idle socket under 20 KB (issue 14;
docs/performance.md §6, docs/architecture.md "Real-time sockets").

The server's protocol (``gateway/connlimit.py`` ``GuardedProtocol``) does the handshake with
:func:`handshake` when a WebSocket route answers an upgrade, and from then on hands the
transport's callbacks to the :class:`WireSocket`. Its *handler* (``gateway/realtime``'s
``Connection``) gets whole messages (:meth:`Handler.on_message`), is told when the transport can
take more (:meth:`Handler.on_writable`) and when the connection is gone
(:meth:`Handler.on_closed`); it sends with :meth:`WireSocket.send_texts` and closes with
:meth:`WireSocket.close` (the closing handshake) or :meth:`WireSocket.fail_connection` (now).

What this module adds to the library, as its "Integrate the Sans-I/O layer" guide asks of an
integration: fragmented messages joined, text decoded as UTF-8 (1007 otherwise), the TCP
connection closed once the library says the stream ends, and closed by force when the peer
does not finish the closing handshake within :data:`CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import Context
from typing import Any, Protocol

from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol

# The library logs "connection open/closed" at INFO for every socket; only its warnings matter.
log = logging.getLogger("converger.socket.wire")
log.setLevel(logging.WARNING)

CLOSE_TIMEOUT = 10.0  # seconds a closing socket waits for its peer (Sanic's websocket_timeout)
_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_OPEN = State.OPEN


class Handler(Protocol):
    def on_message(self, data: str | bytes) -> None: ...

    def on_writable(self) -> None: ...

    def on_closed(self) -> None: ...


class HandshakeRefused(Exception):
    """The upgrade request is not a valid WebSocket handshake (status and the library's
    reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def handshake(path: str, headers: Any, max_size: int | None) -> tuple[ServerProtocol, bytes]:
    """The library's answer to an upgrade request Sanic has parsed: the protocol, already
    open, and the ``101`` response to write; :class:`HandshakeRefused` when the request is not
    a WebSocket handshake."""
    proto = ServerProtocol(max_size=max_size, state=_OPEN, logger=log)
    response = proto.accept(WsRequest(path=path, headers=Headers(headers)))
    if response.status_code != 101:
        raise HandshakeRefused(response.status_code,
                               (response.body or b"").decode(errors="replace").strip())
    return proto, response.serialize()


class WireSocket:
    """One open WebSocket: the library's protocol and the transport it talks through.

    Reading is paused from the handshake until a handler is attached (:meth:`adopt`), so no
    message arrives before someone can take it."""

    __slots__ = ("loop", "transport", "proto", "handler", "writable", "_parts", "_text", "_closer")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport,
                 proto: ServerProtocol) -> None:
        self.loop = loop  # (at shutdown the socket is closed from outside the running loop)
        self.transport = transport
        self.proto = proto
        self.handler: Handler | None = None
        self.writable = True  # False while the transport's write buffer is over its high mark
        self._parts: list[bytes] | None = None  # a fragmented message being joined
        self._text = True  # ... and whether it is text
        self._closer: asyncio.TimerHandle | None = None
        transport.pause_reading()

    def adopt(self, handler: Handler, early: bytes = b"") -> None:
        """``handler`` takes the messages from now on (``early``: bytes the client sent right
        behind its handshake request, read by the HTTP parser). Reading starts on the event
        loop's next turn, when the handler holds this socket."""
        self.handler = handler
        self.loop.call_soon(self._begin, early, context=Context())  # (not the request's)

    def _begin(self, early: bytes) -> None:
        if early:
            self.data_received(early)
        if self.proto.state is _OPEN and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- from the transport (through the server's protocol) -------------------------------
    def data_received(self, data: bytes) -> None:
        proto = self.proto
        proto.receive_data(data)
        events = proto.events_received()
        self._write_out()  # pongs, the echo of a close, a close for a bad frame
        for frame in events:
            if not isinstance(frame, Frame):  # (after the handshake only frames arrive)
                continue
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY:
                if frame.fin:
                    self._deliver(opcode is _TEXT, bytes(frame.data))
                else:
                    self._parts = [bytes(frame.data)]
                    self._text = opcode is _TEXT
            elif opcode is _CONT and self._parts is not None:
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    parts, self._parts = self._parts, None
                    self._deliver(self._text, b"".join(parts))
        if proto.close_expected():
            self._arm_closer()

    def _deliver(self, text: bool, data: bytes) -> None:
        handler = self.handler
        if handler is None or self.proto.state is not _OPEN:
            return  # closing: what follows a close is not read
        if not text:
            handler.on_message(bytes(data))
            return
        try:
            message = data.decode()
        except UnicodeDecodeError:
            self.fail_connection(1007, "invalid UTF-8 in a text frame")
            return
        handler.on_message(message)

    def eof_received(self) -> None:
        self.proto.receive_eof()
        self._write_out()

    def connection_lost(self) -> None:
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        if self.proto.state is not State.CLOSED:
            self.proto.state = State.CLOSED
        # The library's parser is a generator holding its protocol: ended here, the two form
        # no cycle, so a socket frozen out of the collector's walks (gateway/heap.py) is
        # freed by reference counting.
        self.proto.parser.close()
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.on_closed()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        if self.handler is not None:
            self.handler.on_writable()

    # -- to the transport ------------------------------------------------------------------
    def send_texts(self, messages: list[str]) -> None:
        """Send text messages, in order, in one write (nothing once the socket is closing)."""
        proto = self.proto
        if proto.state is not _OPEN:
            return
        for message in messages:
            proto.send_text(message.encode())
        self._write_out()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (after what was sent before); the TCP connection closes
        when the peer answers, or after :data:`CLOSE_TIMEOUT`."""
        if self.proto.state is _OPEN:
            try:
                self.proto.send_close(code, reason)
            except InvalidState:
                return
            self._write_out()
            self._arm_closer()

    def fail_connection(self, code: int = 1006, reason: str = "") -> None:
        """Close now: a close frame (except for 1006) and the TCP connection closed without
        waiting for the peer's answer (which may never come: a client that stopped reading)."""
        if self.proto.state is _OPEN:
            self.proto.fail(code, reason)  # a close frame, then the end of the stream
            self._write_out()
        if not self.transport.is_closing():
            self.transport.close()
        self._arm_closer()

    def _write_out(self) -> None:
        transport = self.transport
        for data in self.proto.data_to_send():
            if data:
                transport.write(data)
            else:  # the library's end of stream: a server closes the TCP connection
                transport.close()

    def _arm_closer(self) -> None:
        if self._closer is None:
            self._closer = self.loop.call_later(CLOSE_TIMEOUT, self._abort, context=Context())

    def _abort(self) -> None:
        self._closer = None
        self.transport.abort()  # the peer did not finish closing: connection_lost follows
