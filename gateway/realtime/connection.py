"""One Phoenix socket: the reader loop, a sender task draining a bounded queue, heartbeats,
joins with replay, and the idle timeout. The two sockets (legacy and Converger) differ only in
their :class:`Router` (topics, authorisation, frames, client events).

Why a queue per socket: the hub hands each frame to every subscriber without awaiting, so one
socket that stops reading can never delay the others; when its queue is full it is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

from sanic import Request

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


class Connection:
    """A connected socket. ``claims`` are the verified token's claims."""

    def __init__(self, request: Request, ws: Any, router: Router, claims: dict[str, Any],
                 vsn: str) -> None:
        ctx = request.app.ctx
        self.app = request.app
        self.gw: Gateway = ctx  # type: ignore[assignment]  # app.ctx is the Gateway
        self.request = request  # the upgrade request (for the rate-limit hook)
        self.ws = ws
        self.router = router
        self.claims = claims  # compact(): the upgrade request's are
        self.vsn = vsn
        self.hub = ctx.hub
        self.queue_limit = ctx.settings.ws_send_queue
        self.idle_timeout = float(ctx.settings.ws_idle_timeout)
        self.channels: dict[str, Channel] = {}
        # A Converger streamUrl may carry ``watermark``: the replay point when a join names none.
        self.url_watermark: str | None = request.args.get("watermark")
        # Frames waiting to be sent, and the task sending them: both exist only while there is
        # something to send (an idle socket holds neither: memory per idle socket, issue 14).
        self._queue: deque[str] | None = None
        self._closed = False
        self._sender: asyncio.Task[None] | None = None
        # Closed at once when its tenant is disabled or deleted (gateway/domain/tenants.py).
        self._tenant_topic = f"tenant:{claims.get('tenant_id')}"
        self._tenant_watch = Subscriber(lambda event, payload: self._tenant_gone(payload))

    # -- sending ---------------------------------------------------------------------------
    def offer(self, frame: str, force: bool = False) -> bool:
        """Queue a frame; False (and the socket is being dropped) when the queue is full."""
        if self._closed:
            return True
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        elif not force and len(queue) >= self.queue_limit:
            self.abort(CLOSE_SLOW, "too slow: send queue full")
            return False
        queue.append(frame)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(queue))
        return True

    def reply(self, msg: Message, status: str, response: Any = None) -> None:
        self.offer(phoenix.reply(self.vsn, msg, status, response), force=True)

    def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> None:
        self.offer(phoenix.encode(self.vsn, join_ref, None, topic, event, payload), force=True)

    async def _send_loop(self, queue: deque[str]) -> None:
        """Send the queued frames in order; done when the queue is empty (``offer`` starts the
        next one: one task per socket while it idles, the handler's)."""
        ws = self.ws
        try:
            while queue:
                await ws.send(queue.popleft())
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer went away; the reader loop notices and cleans up
            self.abort(1006, "send failed")
        finally:
            if self._queue is queue:
                self._queue = None
                self._sender = None

    def abort(self, code: int, reason: str) -> None:
        """Drop the socket now, without waiting on a peer that may not be reading."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe_all()
        if self._queue is not None:
            self._queue.clear()
        if self._sender is not None:
            self._sender.cancel()
        try:
            self.ws.fail_connection(code, reason)
        except Exception:  # already gone
            pass

    async def close(self, code: int, reason: str) -> None:
        """Close after the queued frames are sent (a reply before the close is seen)."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe_all()
        if self._sender is not None:
            try:
                await asyncio.wait_for(self._sender, timeout=5)
            except (TimeoutError, asyncio.CancelledError, Exception):
                pass
        try:
            await self.ws.close(code, reason)
        except Exception:
            pass

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
    async def run(self) -> None:
        """Serve the socket until the peer leaves, idles out or misbehaves."""
        self.watch_tenant()
        try:
            while not self._closed:
                raw = await self.ws.recv(timeout=self.idle_timeout)
                if raw is None:
                    if self._closed:
                        return
                    await self.close(CLOSE_NORMAL, "heartbeat timeout")
                    return
                if isinstance(raw, bytes | bytearray | memoryview):
                    await self.close(CLOSE_UNSUPPORTED, "binary frames are not supported")
                    return
                try:
                    msg = phoenix.decode(raw, self.vsn)
                except ProtocolError as exc:
                    await self.close(CLOSE_INVALID, str(exc)[:120])
                    return
                await self.dispatch(msg)
        finally:
            self._closed = True
            self._unsubscribe_all()
            if self._sender is not None and not self._sender.done():
                self._sender.cancel()

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
