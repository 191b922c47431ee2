"""One Phoenix socket: messages in, a bounded send queue out, heartbeats, joins with replay,
and the idle timeout. The two sockets (legacy and Converger) differ only in their
:class:`Router` (topics, authorisation, frames, client events).

The socket is driven by its WebSocket (``gateway/wire.py``): a message arrives as a call, not
through a reader task. Idle, a socket holds no task, no queue, no timer and no asyncio
primitive; one :class:`Sweep` per process keeps every socket's idle timeout (memory per idle
socket, issue 14; docs/performance.md §6):

* a heartbeat is answered at once; a message that needs the store (a join, a client event)
  goes to a task that exists while such messages wait, and handles them in order;
* frames to send are queued until the event loop's next turn and then written together, so
  the hub's fan-out never writes inside the request that committed the activity;
* while the transport's write buffer is full (a client that stops reading) frames wait in
  the queue; when it holds ``CONVERGER_WS_SEND_QUEUE`` of them the socket is dropped (1013).
  The hub hands each frame to every subscriber without awaiting, so one socket that stops
  reading can never delay the others.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Callable, Sequence
from contextvars import Context
from time import monotonic
from typing import Any

from sanic import Sanic

from ..context import Gateway
from ..hub import Encoder, Subscriber
from . import phoenix
from .phoenix import Message, ProtocolError

log = logging.getLogger("converger.socket")

# Close codes (RFC 6455): 1000 normal, 1003 unsupported data, 1007 invalid payload,
# 1008 policy (its tenant was disabled), 1009 too big (sent by the websocket library itself),
# 1013 try again later (too slow).
CLOSE_NORMAL, CLOSE_UNSUPPORTED, CLOSE_INVALID, CLOSE_SLOW = 1000, 1003, 1007, 1013
CLOSE_POLICY = 1008


class JoinError(Exception):
    """A join refused with ``{"reason": ...}``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Router:
    """What makes a socket legacy or Converger. Subclasses fill these in."""

    kind = ""

    def conversation_of(self, topic: str) -> str:
        """The conversation id in a topic, or :class:`JoinError`."""
        raise NotImplementedError

    def tenant_topic(self, conn: Connection, topic: str) -> bool:
        """Whether ``topic`` is one of the tenant's own topics (no conversation, no replay: its
        channel health); raises :class:`JoinError` when this socket may not join it."""
        return False

    def encoder(self, vsn: str) -> Encoder:
        """The shared encoder of live hub events for this socket kind and serializer."""
        raise NotImplementedError

    async def join(self, conn: Connection, conversation_id: str, payload: dict[str, Any]
                   ) -> tuple[list[Any], int]:
        """Authorise; return (activities to replay, seq they follow) or raise JoinError."""
        raise NotImplementedError

    def replay_frames(self, vsn: str, topic: str, join_ref: str | None,
                      activities: Sequence[Any]) -> list[str]:
        raise NotImplementedError

    async def handle_in(self, conn: Connection, channel: Channel, msg: Message) -> None:
        conn.reply(msg, "error", {"reason": "unknown event"})


class Channel(Subscriber):
    """One joined topic of one connection, subscribed to the hub topic of its conversation.

    Until the join's replay has been queued, live events are held in ``pending``; afterwards
    a ``new_activity`` whose ``seq`` was already sent (by replay) is skipped, so a client never
    sees one twice and never misses one between replay and live.
    """

    def __init__(self, conn: Connection, topic: str, conversation_id: str, join_ref: str | None,
                 encoder: Encoder, hub_topic: str | None = None) -> None:
        super().__init__()
        self.conn = conn
        self.topic = topic
        self.conversation_id = conversation_id  # "" on a tenant topic
        self.hub_topic = hub_topic or f"conversation:{conversation_id}"
        self.join_ref = join_ref
        self.encoder = encoder
        self.last_seq = 0
        self.pending: list[tuple[int, Any]] | None = []

    def offer(self, event: str, payload: Any, frame: Any) -> bool:
        seq = getattr(payload, "seq", None) if event == "new_activity" else None
        if self.pending is not None:
            self.pending.append((seq or 0, frame))
            return len(self.pending) <= self.conn.queue_limit
        if seq is not None:
            if seq <= self.last_seq:
                return True
            self.last_seq = seq
        if frame is None:  # this socket kind does not forward the event
            return True
        return self.conn.offer(frame)

    def release(self, after_seq: int) -> None:
        """The replay is queued: send what arrived meanwhile and go live."""
        pending, self.pending = self.pending or [], None
        self.last_seq = max(self.last_seq, after_seq)
        for seq, frame in pending:
            if seq and seq <= self.last_seq:
                continue
            if seq:
                self.last_seq = seq
            if frame is not None:
                self.conn.offer(frame, force=True)

    def dropped(self) -> None:
        self.conn.abort(CLOSE_SLOW, "too slow: send queue full")


def compact(claims: dict[str, Any]) -> dict[str, Any]:
    """The claims a socket keeps for its lifetime, with their names and short values interned:
    the sockets of one tenant or conversation share the strings instead of each holding the
    token's own decoded copies (memory per idle socket, docs/performance.md §6)."""
    return {sys.intern(k): sys.intern(v) if type(v) is str and len(v) <= 64 else v
            for k, v in claims.items()}


INBOX_PAUSE = 16  # messages waiting for the dispatcher before the socket stops reading


class _TenantWatch(Subscriber):
    """The connection's subscription to its tenant's topic: closed when the tenant goes."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn: Connection | None = conn  # None once the socket is closed

    def offer(self, event: str, payload: Any, frame: Any) -> bool:
        conn = self.conn
        return conn._tenant_gone(payload) if conn is not None else True

    def dropped(self) -> None:
        pass


class Sweep:
    """One timer per process for every socket's idle timeout (and Direct Line's keep-alive),
    instead of a timer per socket: every ``SWEEP_FRACTION`` of ``CONVERGER_WS_IDLE_TIMEOUT`` it
    lets each open socket look at its clock (:meth:`Connection.tick`), so a silent socket
    closes between 1 and 7/6 of the timeout after its client's last frame. Measured against a
    timer per socket: docs/performance.md §6."""

    _current: Sweep | None = None

    def __init__(self, period: float) -> None:
        self.period = period
        self.loop = asyncio.get_running_loop()
        self.conns: dict[Connection, None] = {}
        self._handle: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, idle_timeout: float) -> Sweep:
        """This event loop's sweep (a server runs one loop; tests may start another)."""
        sweep = cls._current
        period = max(idle_timeout * SWEEP_FRACTION, 0.05)
        if sweep is None or sweep.period != period or sweep.loop.is_closed():
            sweep = cls._current = Sweep(period)
        return sweep

    def add(self, conn: Connection) -> None:
        self.conns[conn] = None
        if self._handle is None:
            self._handle = self.loop.call_later(self.period, self._sweep, context=Context())

    def discard(self, conn: Connection) -> None:
        self.conns.pop(conn, None)

    def _sweep(self) -> None:
        self._handle = None
        now = monotonic()
        for conn in list(self.conns):
            try:
                conn.tick(now)
            except Exception:  # one socket's failure must not stop the others' clocks
                log.exception("idle sweep failed on a socket")
        if self.conns:
            # A fresh, empty context: not the one of the handler that added the first socket,
            # which holds its request (Sanic's ``Request.get_current``).
            self._handle = self.loop.call_later(self.period, self._sweep, context=Context())


SWEEP_FRACTION = 1 / 6  # of the idle timeout: Direct Line's keep-alive is every other sweep


class Connection:
    """A connected socket. ``claims`` are the verified token's claims; ``ws`` is the socket's
    ``gateway.wire.WireSocket`` once :meth:`start` has adopted it."""

    __slots__ = ("app", "gw", "ws", "router", "claims", "vsn", "hub", "channels", "url_watermark",
                 "_queue", "_flushing", "_closed", "_inbox", "_task", "_last",
                 "_tenant_watch", "seat", "on_end")

    def __init__(self, app: Sanic, router: Router, claims: dict[str, Any], vsn: str,
                 url_watermark: str | None = None) -> None:
        ctx = app.ctx
        self.app = app
        self.gw: Gateway = ctx  # app.ctx is the Gateway
        self.ws: Any = None
        self.router = router
        self.claims = claims  # compact(): the upgrade request's are
        self.vsn = vsn
        self.hub = ctx.hub
        self.channels: dict[str, Channel] = {}
        # A Converger streamUrl may carry ``watermark``: the replay point when a join names none.
        self.url_watermark = url_watermark
        # Frames waiting for the next write, and messages waiting for the dispatcher task (and
        # the task): each exists only while there is something in it.
        self._queue: list[str] | None = None
        self._flushing = False  # a write of the queue is scheduled
        self._closed = False
        self._inbox: deque[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last = monotonic()  # when the client last sent a frame (the idle sweep reads it)
        # Closed at once when its tenant is disabled or deleted (gateway/domain/tenants.py).
        self._tenant_watch = _TenantWatch(self)
        self.seat: Any = None  # what the socket holds of the caps (gateway/realtime/__init__.py)
        self.on_end: Callable[[Connection], None] | None = None  # called once, when it ends

    @property
    def queue_limit(self) -> int:
        return int(self.gw.settings.ws_send_queue)

    @property
    def idle_timeout(self) -> float:
        return float(self.gw.settings.ws_idle_timeout)

    @property
    def _tenant_topic(self) -> str:
        return f"tenant:{self.claims.get('tenant_id')}"

    # -- life ------------------------------------------------------------------------------
    def start(self, upgraded: Any) -> None:
        """Take the socket over from the upgrade (``gateway.connlimit.Upgraded``)."""
        self.watch_tenant()
        Sweep.of(self.idle_timeout).add(self)
        self.gw.heap.socket_opened()  # long-lived: frozen out of the collector's walks
        self.ws = upgraded.adopt(self)

    def tick(self, now: float) -> None:
        """The idle sweep's look at this socket: closed when its client has been silent for
        the idle timeout."""
        if now - self._last >= self.idle_timeout:
            self.close(CLOSE_NORMAL, "heartbeat timeout")

    def on_closed(self) -> None:
        """The connection is gone (closed by either side, or lost)."""
        self._closed = True
        self._unsubscribe_all()
        self._queue = None
        # No cycle left (the watch points back here): a socket frozen out of the collector's
        # walks (gateway/heap.py) is freed by reference counting once it is gone.
        self._tenant_watch.conn = None
        self.gw.heap.socket_closed()
        Sweep.of(self.idle_timeout).discard(self)
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end(self)

    # -- sending ---------------------------------------------------------------------------
    def offer(self, frame: str, force: bool = False) -> bool:
        """Queue a frame; False (and the socket is being dropped) when the queue is full."""
        if self._closed:
            return True
        queue = self._queue
        if queue is None:
            queue = self._queue = []
        elif not force and len(queue) >= self.queue_limit:
            self.abort(CLOSE_SLOW, "too slow: send queue full")
            return False
        queue.append(frame)
        if not self._flushing and self.ws is not None and self.ws.writable:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush, context=Context())
        return True

    def _flush(self) -> None:
        self._flushing = False
        queue = self._queue
        if queue is None or self._closed or not self.ws.writable:
            return  # on_writable sends the rest
        self._queue = None
        self.ws.send_texts(queue)

    def on_writable(self) -> None:
        if self._queue and not self._flushing:
            self._flush()

    def reply(self, msg: Message, status: str, response: Any = None) -> None:
        self.offer(phoenix.reply(self.vsn, msg, status, response), force=True)

    def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> None:
        self.offer(phoenix.encode(self.vsn, join_ref, None, topic, event, payload), force=True)

    def abort(self, code: int, reason: str) -> None:
        """Drop the socket now, without waiting on a peer that may not be reading."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe_all()
        self._queue = None
        if self.ws is not None:
            self.ws.fail_connection(code, reason)

    def close(self, code: int, reason: str) -> None:
        """Close after the queued frames (a reply before the close is seen)."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe_all()
        queue, self._queue = self._queue, None
        if self.ws is not None:
            if queue:
                self.ws.send_texts(queue)
            self.ws.close(code, reason)

    def _unsubscribe_all(self) -> None:
        for channel in self.channels.values():
            self.hub.unsubscribe(channel.hub_topic, channel)
        self.channels.clear()
        self.hub.unsubscribe(self._tenant_topic, self._tenant_watch)

    def watch_tenant(self) -> None:
        self.hub.subscribe(self._tenant_topic, self._tenant_watch)

    def _tenant_gone(self, payload: Any = None) -> bool:
        # Read from the change feed (another worker process made the change): a socket that
        # has joined nothing may have connected after it was committed — its joins are
        # refused by the store, as in one process — so only sockets with joins close.
        if isinstance(payload, dict) and payload.get("feed") and not self.channels:
            return True
        self.abort(CLOSE_POLICY, "tenant disabled")
        return True

    # -- receiving -------------------------------------------------------------------------
    def on_message(self, raw: str | bytes) -> None:
        """One message from the client (the socket's ``gateway.wire.WireSocket`` calls this)."""
        self._last = monotonic()
        if self._closed:
            return
        if not isinstance(raw, str):
            self.close(CLOSE_UNSUPPORTED, "binary frames are not supported")
            return
        try:
            msg = phoenix.decode(raw, self.vsn)
        except ProtocolError as exc:
            self.close(CLOSE_INVALID, str(exc)[:120])
            return
        if (self._task is None and msg.topic == phoenix.PHOENIX_TOPIC
                and msg.event == phoenix.HEARTBEAT):
            self.reply(msg, "ok")  # the common case, without a task
            return
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        inbox.append(msg)
        if self._task is None:
            self._task = asyncio.create_task(self._dispatch_all(inbox))
        elif len(inbox) >= INBOX_PAUSE:
            self.ws.transport.pause_reading()  # the client outruns the store: it waits

    async def _dispatch_all(self, inbox: deque[Message]) -> None:
        """Handle the waiting messages in order; done when none is left."""
        try:
            while inbox and not self._closed:
                paused = len(inbox) >= INBOX_PAUSE
                await self.dispatch(inbox.popleft())
                if paused and len(inbox) < INBOX_PAUSE and not self._closed:
                    self.ws.transport.resume_reading()
        except Exception:  # dispatch answers its own errors; this is a bug: drop the socket
            log.exception("socket dispatcher failed")
            self.abort(1011, "internal error")
        finally:
            self._task = None
            self._inbox = None

    async def dispatch(self, msg: Message) -> None:
        if msg.topic == phoenix.PHOENIX_TOPIC:
            if msg.event == phoenix.HEARTBEAT:
                self.reply(msg, "ok")
            else:
                self.reply(msg, "error", {"reason": "unknown event"})
            return
        if msg.event == phoenix.JOIN:
            await self.join(msg)
            return
        channel = self.channels.get(msg.topic)
        if msg.event == phoenix.LEAVE:
            self.reply(msg, "ok")
            if channel is not None:
                self.leave(channel)
            return
        if channel is None:
            self.reply(msg, "error", {"reason": "unmatched topic"})
            return
        try:
            await self.router.handle_in(self, channel, msg)
        except Exception:
            # A crash in one event must not take the socket down: the client gets an answer.
            log.exception("%s on %s failed", msg.event, msg.topic)
            self.reply(msg, "error", {"reason": "internal error"})

    def leave(self, channel: Channel) -> None:
        self.hub.unsubscribe(channel.hub_topic, channel)
        self.channels.pop(channel.topic, None)
        self.push(channel.topic, phoenix.CLOSE, {}, join_ref=channel.join_ref)

    async def join(self, msg: Message) -> None:
        old = self.channels.get(msg.topic)
        if old is not None:  # a second join replaces the first, as Phoenix does
            self.leave(old)
        join_ref = msg.join_ref if msg.join_ref is not None else msg.ref
        try:
            if self.router.tenant_topic(self, msg.topic):
                self._join_tenant_topic(msg, join_ref)
                return
            conversation_id = self.router.conversation_of(msg.topic)
            if not isinstance(msg.payload, dict):
                raise JoinError("invalid payload")
        except JoinError as exc:
            self.reply(msg, "error", {"reason": exc.reason})
            return
        channel = Channel(self, msg.topic, conversation_id, join_ref,
                          self.router.encoder(self.vsn))
        # Subscribe before reading the replay, so nothing committed meanwhile is missed.
        self.hub.subscribe(channel.hub_topic, channel)
        try:
            replay, after_seq = await self.router.join(self, conversation_id, msg.payload)
        except JoinError as exc:
            self.hub.unsubscribe(channel.hub_topic, channel)
            self.reply(msg, "error", {"reason": exc.reason})
            return
        except Exception:
            self.hub.unsubscribe(channel.hub_topic, channel)
            log.exception("join failed on %s", msg.topic)
            self.reply(msg, "error", {"reason": "join crashed"})
            return
        if self._closed:
            self.hub.unsubscribe(channel.hub_topic, channel)
            return
        self.channels[msg.topic] = channel
        self.reply(msg, "ok")
        for frame in self.router.replay_frames(self.vsn, msg.topic, join_ref, replay):
            self.offer(frame, force=True)
        if replay:
            after_seq = max(after_seq, replay[-1].seq)
        channel.release(after_seq)

    def _join_tenant_topic(self, msg: Message, join_ref: str | None) -> None:
        """Subscribe to a tenant topic as it is: its events from now on, nothing to replay."""
        channel = Channel(self, msg.topic, "", join_ref, self.router.encoder(self.vsn),
                          hub_topic=msg.topic)
        self.hub.subscribe(channel.hub_topic, channel)
        self.channels[msg.topic] = channel
        self.reply(msg, "ok")
        channel.release(0)
