"""The activity event stream (``CONVERGER_EVENTS_URL``, docs/pipelines.md): an outbox relay.

The feed (:mod:`store.feed`) is the outbox: a new activity's row and a conversation's change are
written by triggers and a delivery status change by the transaction that makes it, so an event
exists exactly when its change committed. One relay per gateway (a singleton role: the leader
process with ``--workers N``, the leader node on PostgreSQL) reads the feed after its cursor in
id order — commit order — publishes a round of events to the broker in that order (pipelined:
all written on one connection/channel, then every confirmation awaited), and only then moves
its cursor; the cursor is stored (``event_relay.last_id``) at most every ``FLUSH_EVERY`` while
busy and at once when idle. So:

- nothing is published before it committed, nothing committed is skipped;
- a relay that crashed or lost the broker resumes at the cursor: events published but not yet
  recorded are published again, with the same ``id`` (at least once; JetStream also drops them
  by ``Nats-Msg-Id`` within its duplicate window);
- events are written to the broker in feed order, so a conversation's events reach it in
  ``seq`` order;
- an event too large for the broker goes out without its data (``truncated``) or, if even that
  is refused, is skipped: logged and counted in ``/readyz``, never a stall;
- an unreachable broker never blocks the API: the relay retries with a backoff while the feed
  pruner keeps every event after the cursor.

Publishers use the brokers' own clients: nats-py (JetStream) and aio-pika (RabbitMQ), the
``events`` extra.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import msgspec

from store import feed, relay
from store.connect import connect as open_sqlite

from . import jetstream
from .config import EVENT_SCHEMES as SCHEMES
from .tasks import cancel_and_wait, wait_event

log = logging.getLogger("converger.events")

SCHEMA_VERSION = 1
PREFIX = "converger"  # subjects / routing keys: converger.<tenant>.<channel>.<type>
STREAM = "CONVERGER_EVENTS"  # the JetStream stream (subjects converger.>)
EXCHANGE = "converger.events"  # the RabbitMQ topic exchange
BATCH = 1000  # feed events read per round at most (published pipelined)
PAGE = 200  # feed events read and built (and AMQP frames marshalled) between two turns of the
# event loop: a round never holds the loop for long (docs/performance.md)
GATHER = 0.1  # seconds commits gather after a round that found events (fewer, fuller rounds:
# each round costs a query, a confirmation and on RabbitMQ a transaction, docs/performance.md)
FLUSH_EVERY = 0.25  # seconds between cursor writes while busy (each is a write transaction)
# A safety look when no wake-up came (CONVERGER_EVENTS_POLL, 2 s): commits of this process
# (on_commit), of its sibling processes (their feed datagram) and of other nodes on PostgreSQL
# (NOTIFY converger_feed, through the feed reader) wake the relay at once.
BACKOFF = (0.2, 0.5, 1.0, 2.0)  # seconds between reconnection attempts (then the last)
# A message larger than this goes out without its data (truncated: true): under NATS' default
# max_payload (1 MiB) with room for the headers.
MAX_BYTES = 1_000_000
HEADROOM = 64  # bytes for NATS' header framing besides the subject and the id
TIMEOUT = 5.0  # seconds for a connection attempt or a publish confirmation
KINDS = ("a", "d", "c")  # the feed's kinds that are published (store/feed.py)
TYPES = {"a": "activity.created", "d": "delivery.status"}
CONVERSATION_TYPES = ("conversation.created", "conversation.closed", "conversation.reopened",
                      "conversation.updated")

_encode = msgspec.json.Encoder().encode


def redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _token(value: str | None) -> str:
    """A subject / routing-key token: no dots, wildcards or spaces."""
    if not value:
        return "_"
    return "".join("_" if c in ".*># \t\r\n" else c for c in value)


@functools.lru_cache(maxsize=4096)
def subject(tenant_id: str, channel_id: str | None, type_: str) -> str:
    return f"{PREFIX}.{_token(tenant_id)}.{_token(channel_id)}.{type_}"


class Message(msgspec.Struct, gc=False):
    """One broker message (``gc=False`` like store.relay.Row: bytes and strings, no cycles)."""

    subject: str
    id: str
    body: bytes
    truncated: bool = False  # published without its data (too large)


def conversation_type(data: dict[str, Any]) -> str:
    """A conversation change's event type: created, closed, reopened, or updated (metadata, or
    a status other than active/closed)."""
    if data.get("change") == "created":
        return "conversation.created"
    status, previous = data.get("status"), data.get("previous_status")
    if status != previous:
        if status == "closed":
            return "conversation.closed"
        if status == "active" and previous == "closed":
            return "conversation.reopened"
    return "conversation.updated"


class Envelope(msgspec.Struct, gc=False):
    """A message's JSON (docs/events.schema.json), in the schema's key order (built, encoded
    and dropped at once: never part of a cycle)."""

    id: str
    type: str
    schema_version: int
    position: int
    tenant_id: str
    channel_id: str | None
    conversation_id: str
    seq: int | None
    occurred_at: str
    data: Any


def build(rows: list[relay.Row], now: str) -> list[Message]:
    """The broker messages for these feed rows (:func:`store.relay.read`). Kinds other than
    ``a``, ``d`` and ``c``, activities deleted since, and activities and delivery statuses of a
    deleted conversation have none. A conversation change carries its tenant and channel."""
    out: list[Message] = []
    for e in rows:
        kind = e.kind
        if kind == "a":
            act = e.activity
            if act is None or e.tenant_id is None:
                continue
            doc = Envelope(f"msg_{act.id}", "activity.created", SCHEMA_VERSION, e.id,
                           e.tenant_id, e.channel_id, act.conversation_id, act.seq,
                           act.inserted_at, act)
        elif kind == "c":
            change = msgspec.json.decode(e.data) if e.data is not None else None
            data = dict(change) if isinstance(change, dict) else {}
            data.pop("change", None)
            ctype = conversation_type(change if isinstance(change, dict) else {})
            doc = Envelope(f"msg_c{e.id}", ctype, SCHEMA_VERSION, e.id,
                           str(data.get("tenant_id") or ""), data.get("channel_id"), e.topic,
                           None, data.get("updated_at") or now, data)
        elif kind == "d":
            if e.tenant_id is None:
                continue
            status = msgspec.json.decode(e.data) if e.data is not None else None
            data = status if isinstance(status, dict) else {}
            doc = Envelope(f"msg_d{e.id}", "delivery.status", SCHEMA_VERSION, e.id, e.tenant_id,
                           data.get("channel_id") or e.channel_id, e.topic, None, now, data)
        else:
            continue
        out.append(_message(doc))
    return out


def _message(doc: Envelope) -> Message:
    body = _encode(doc)
    msg = Message(subject(doc.tenant_id, doc.channel_id, doc.type), doc.id, body)
    if len(body) > MAX_BYTES:
        log.warning("events: %s (%s) is %d bytes, over %d: published without its data",
                    doc.id, doc.type, len(body), MAX_BYTES)
        msg.body, msg.truncated = truncated(msg), True
    return msg


def truncated(msg: Message) -> bytes:
    """The message without its ``data`` (``"truncated": true``): the envelope that still names
    the ids, for a consumer to fetch the rest through the API."""
    doc = msgspec.json.decode(msg.body)
    if doc.get("truncated"):
        return msg.body
    doc["data"], doc["truncated"] = None, True
    return _encode(doc)


class TooLarge(Exception):
    """The broker refused a message for its size (NATS ``max_payload``, RabbitMQ
    ``max_message_size``)."""


class Publisher(Protocol):
    async def publish(self, msg: Message) -> None:
        """Publish and wait for the broker's confirmation; :class:`TooLarge` when the broker
        refuses the message for its size (the publisher stays usable)."""

    async def publish_many(self, msgs: list[Message]) -> None:
        """Publish these in this order, pipelined (all sent, then every confirmation awaited);
        :class:`TooLarge` when one was refused for its size (the caller then publishes them
        one by one: those before it again, with the same ids)."""
    async def close(self) -> None: ...


class PubAck(msgspec.Struct):
    """JetStream's answer to a publish: the message's sequence number in the stream, and
    whether it was a repeat of an id already stored (then ``seq`` is the stored one's)."""

    seq: int = 0
    duplicate: bool = False


_decode_ack = msgspec.json.Decoder(PubAck).decode

# NatsPublisher._write: the nats-py client internals it uses (its pending buffer, the flusher's
# kick) and the header block its publish builds for one Nats-Msg-Id header.
_NATS_INTERNALS = ("_pending", "_pending_data_size", "_max_pending_size", "_flush_pending",
                   "stats")
_MSG_ID = b"NATS/1.0\r\nNats-Msg-Id: "
_HEADER_END = b"\r\n\r\n"


class _Round:
    """The acks awaited for one round of pipelined JetStream publishes."""

    def __init__(self, n: int, done: asyncio.Future[None]) -> None:
        self.n, self.done = n, done
        self.acks: list[PubAck] = []


class NatsPublisher:
    """JetStream: the stream ``CONVERGER_EVENTS`` (subjects ``converger.>``, file storage) is
    created when missing; each publish waits for the stream's ack.

    A round is published pipelined with nats-py's core ``publish`` on one connection, and the
    stream's acks (its PubAck JSON, or an error) come to one inbox subscription, a reply subject
    per round. Only the round's **first and last** messages ask for an ack: JetStream stores one
    connection's messages in the order they were sent, so when those two acks are new messages
    ``n - 1`` sequence numbers apart, every message between them was stored, in order (one
    lost, refused or a repeat of a stored id leaves a gap; another publisher's messages in
    between leave too many). Otherwise the round is published again with an ack for each
    message — the stream drops the repeats by ``Nats-Msg-Id``. An ack parsed per message in
    Python was a third of the relay's cost (docs/performance.md).

    The round's ``HPUB`` commands are made by nats-py's own ``hpub_cmd`` and appended to the
    client's pending buffer, which its flusher writes as one write (:meth:`_write`): its
    ``publish`` checks the subject, builds the header block through a dict and a regex and
    awaits twice per message — four fifths of the relay's publishing CPU for what is, per
    message, the same bytes (docs/performance.md). Without those internals (another nats-py)
    the round goes through ``publish`` as before."""

    def __init__(self, nc: Any, js: Any) -> None:
        self.nc, self.js = nc, js
        self._inbox: str | None = None
        self._rounds: dict[str, _Round] = {}
        self._next = 0
        self.resent = 0  # rounds published again with an ack per message
        self.fast = all(hasattr(nc, name) for name in _NATS_INTERNALS)

    async def _on_ack(self, msg: Any) -> None:
        r = self._rounds.get(msg.subject.rsplit(".", 1)[-1])
        if r is None or r.done.done():
            return
        status = msg.headers.get("Status") if msg.headers else None
        if status or b'"error"' in msg.data:  # 503: no stream for the subject; an API error
            r.done.set_exception(ConnectionError(
                f"JetStream refused a publish: {status or msg.data[:300].decode(errors='replace')}"))
            return
        try:
            r.acks.append(_decode_ack(msg.data))
        except msgspec.DecodeError:
            r.done.set_exception(ConnectionError(f"JetStream answered {msg.data[:300]!r}"))
            return
        if len(r.acks) == r.n:
            r.done.set_result(None)

    @classmethod
    async def connect(cls, url: str) -> NatsPublisher:
        nc, js = await jetstream.connect(url, name="events", stream=STREAM,
                                         subjects=[f"{PREFIX}.>"], timeout=TIMEOUT, log=log)
        return cls(nc, js)

    async def publish(self, msg: Message) -> None:
        from nats.errors import MaxPayloadError

        # The server counts the headers too, and closes the connection on a message over its
        # max_payload: refuse it here instead.
        limit = self.nc.max_payload - len(msg.subject) - len(msg.id) - HEADROOM
        if len(msg.body) > limit:
            raise TooLarge(f"{len(msg.body)} bytes, over the server's max_payload "
                           f"({self.nc.max_payload} with the headers)")
        try:
            await self.js.publish(msg.subject, msg.body, timeout=TIMEOUT,
                                  headers={"Nats-Msg-Id": msg.id})
        except MaxPayloadError:
            raise TooLarge(f"over the server's max_payload ({self.nc.max_payload})") from None

    async def publish_many(self, msgs: list[Message]) -> None:
        limit = self.nc.max_payload - HEADROOM
        if any(len(m.body) + len(m.subject) + len(m.id) > limit for m in msgs):
            raise TooLarge("a message over the server's max_payload")
        if not msgs:
            return
        if len(msgs) > 2:
            acks = await self._round(msgs, every=False)
            first, last = acks if acks[0].seq <= acks[1].seq else acks[::-1]
            if (not first.duplicate and not last.duplicate
                    and last.seq - first.seq == len(msgs) - 1):
                return
            self.resent += 1
            log.debug("events: JetStream acks %s and %s for a round of %d: publishing it "
                      "again with an ack per message", first, last, len(msgs))
        await self._round(msgs, every=True)

    async def _round(self, msgs: list[Message], every: bool) -> list[PubAck]:
        """Publish ``msgs`` in order, an ack asked for each (``every``) or for the first and the
        last only; their acks, in arrival order."""
        if self._inbox is None:
            self._inbox = self.nc.new_inbox()
            await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        self._next += 1
        key = str(self._next)
        reply = f"{self._inbox}.{key}"
        n = len(msgs) if every else 2
        r = self._rounds[key] = _Round(n, asyncio.get_running_loop().create_future())
        try:
            # Written in order on the one connection; the stream's acks are awaited together.
            if self.fast:
                await self._write(msgs, reply, every)
            else:
                publish, end = self.nc.publish, len(msgs) - 1
                for i, m in enumerate(msgs):
                    await publish(m.subject, m.body,
                                  reply=reply if every or i in (0, end) else "",
                                  headers={"Nats-Msg-Id": m.id})
            await asyncio.wait_for(asyncio.shield(r.done), TIMEOUT)
        finally:
            del self._rounds[key]
        return r.acks

    @staticmethod
    def commands(msgs: list[Message], reply: str, every: bool) -> list[bytes]:
        """The round's ``HPUB`` commands, made by nats-py's ``hpub_cmd``: the bytes its
        ``publish(subject, body, reply=…, headers={"Nats-Msg-Id": id})`` writes (the reply
        subject on every message, or on the first and the last only). Subjects are made of
        :func:`subject`'s tokens and ids are ours (no spaces or line breaks): nothing for
        ``publish``'s checks to refuse (tests/unit/gateway/test_events.py compares them)."""
        from nats.protocol.command import hpub_cmd

        end = len(msgs) - 1
        return [hpub_cmd(m.subject, reply if every or i == 0 or i == end else "",
                         _MSG_ID + m.id.encode() + _HEADER_END, m.body)
                for i, m in enumerate(msgs)]

    async def _write(self, msgs: list[Message], reply: str, every: bool) -> None:
        """The round's commands appended to the client's pending buffer, then its flusher
        kicked once — as ``publish`` does per message, with the same forced flush when the
        buffer goes over its limit. A connection that is not up fails the round (the relay
        reconnects), as ``publish`` would."""
        nc = self.nc
        if not nc.is_connected:
            raise ConnectionError("the NATS connection is not connected")
        limit, size = nc._max_pending_size, 0
        for cmd in self.commands(msgs, reply, every):
            nc._pending.append(cmd)  # looked up each time: the flusher replaces the list
            nc._pending_data_size += len(cmd)
            size += len(cmd)
            if 0 < limit < nc._pending_data_size:
                await nc._flush_pending(force_flush=True)
        nc.stats["out_msgs"] += len(msgs)
        nc.stats["out_bytes"] += size
        await nc._flush_pending()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.nc.close(), TIMEOUT)
        except Exception as exc:
            log.debug("events: nats close: %s", exc)


class _Properties:
    """A message's AMQP properties as ContentHeader marshals them: the same bytes as pamqp's
    ``Basic.Properties(content_type="application/json", delivery_mode=2, message_id=id)``, with
    what comes before the id (the property flags, the content type, the delivery mode) marshalled
    by pamqp once (:meth:`prepare`) and the id by pamqp's ``short_string``. pamqp's own
    ``marshal`` walks all fourteen properties per message: two thirds of the relay's AMQP
    publishing CPU (docs/performance.md). ``message_id`` is the last property set, so the bytes
    split there (tests/unit/gateway/test_events.py compares them with pamqp's)."""

    __slots__ = ("message_id", "short")
    head: ClassVar[bytes] = b""

    def __init__(self) -> None:
        from pamqp.encode import short_string

        self.message_id = ""
        self.short: Callable[[str], bytes] = short_string
        self.prepare()

    @classmethod
    def prepare(cls) -> None:
        if cls.head:
            return
        from pamqp import encode
        from pamqp.commands import Basic

        whole = Basic.Properties(content_type="application/json", delivery_mode=2,
                                 message_id="x").marshal()
        tail = encode.short_string("x")
        if not whole.endswith(tail):
            raise RuntimeError("pamqp no longer marshals message_id last")
        cls.head = whole[:-len(tail)]

    def marshal(self) -> bytes:
        return self.head + self.short(self.message_id)


class AmqpPublisher:
    """RabbitMQ: the durable topic exchange ``converger.events``; persistent messages on a
    transactional channel. A round is written in order, then committed: the broker's
    ``Tx.CommitOk`` comes once it has taken every message of the round (persistent ones routed to
    durable queues are on disk). One round trip per round, no future per message — aio-pika's
    per-message publisher confirms doubled the write path's CPU (docs/performance.md).

    The round's publishes (each a ``Basic.Publish`` method frame, its content header and body
    frames, marshalled by pamqp) go to aiormq's connection writer as one write: aiormq's
    ``basic_publish`` costs a lock, a timeout scope, a queue hand-off and a socket write per
    message — four times the CPU, and the broker spends half as much on one large write as on
    thousands of small ones (docs/performance.md). The method frame depends only on the
    routing key and is marshalled once per key."""

    def __init__(self, conn: Any, channel: Any, raw: Any) -> None:
        self.conn, self.channel, self.raw = conn, channel, raw
        self._methods: dict[tuple[int, str], bytes] = {}  # (channel, routing key) -> frame

    @classmethod
    async def connect(cls, url: str) -> AmqpPublisher:
        import aio_pika

        conn = await aio_pika.connect(url, timeout=TIMEOUT)
        try:
            channel, raw = await cls._channel(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, channel, raw)

    @staticmethod
    async def _channel(conn: Any) -> tuple[Any, Any]:
        import aio_pika

        channel = await conn.channel(publisher_confirms=False)
        await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        raw = await channel.get_underlay_channel()  # aiormq's: Tx.Select / Tx.Commit
        await raw.tx_select(timeout=TIMEOUT)
        return channel, raw

    async def _too_large(self, exc: BaseException) -> None:
        """RabbitMQ closes the channel on a message over its max_message_size (it does not
        tell the limit beforehand; the round is not committed): then a new channel for what
        follows, and TooLarge."""
        from aiormq.exceptions import ChannelPreconditionFailed

        if isinstance(exc, ChannelPreconditionFailed) and (
                "max size" in str(exc) or "larger than" in str(exc)):
            self.channel, self.raw = await self._channel(self.conn)
            raise TooLarge(str(exc)) from None

    async def publish(self, msg: Message) -> None:
        await self.publish_many([msg])

    async def publish_many(self, msgs: list[Message]) -> None:
        if not msgs:
            return
        try:
            # A bound on the whole round: with the broker gone, a full write queue would wait
            # for ever.
            async with asyncio.timeout(TIMEOUT * 2):
                await self._write(msgs)
                await self.raw.tx_commit(timeout=TIMEOUT)
        except Exception as exc:
            await self._too_large(exc)
            raise

    async def _write(self, msgs: list[Message]) -> None:
        """The round's publishes, in order, as one write (no confirmation per message: the
        round's ``Tx.Commit`` answers for them all)."""
        from aiormq.abc import ChannelFrame
        from pamqp.body import ContentBody
        from pamqp.commands import Basic
        from pamqp.frame import marshal
        from pamqp.header import ContentHeader

        raw = self.raw
        if raw.is_closed:  # frames on a channel the broker closed would close the connection
            raise ConnectionError("the AMQP channel is closed")
        number, size, methods = raw.number, raw.max_content_size, self._methods
        props = _Properties()  # one for the round: each header is marshalled before the next id
        parts: list[bytes] = []
        for i, m in enumerate(msgs, 1):
            if i % PAGE == 0:  # let requests through (nothing is written before the end)
                await asyncio.sleep(0)
            method = methods.get((number, m.subject))
            if method is None:
                if len(methods) > 4096:
                    methods.clear()
                method = methods[(number, m.subject)] = marshal(
                    Basic.Publish(exchange=EXCHANGE, routing_key=m.subject), number)
            parts.append(method)
            props.message_id = m.id
            parts.append(marshal(ContentHeader(body_size=len(m.body),
                                               properties=props),  # type: ignore[arg-type]
                                 number))
            for start in range(0, len(m.body), size):  # frame_max bounds a body frame
                parts.append(marshal(ContentBody(m.body[start:start + size]), number))
        if raw.is_closed:  # closed while the frames were marshalled
            raise ConnectionError("the AMQP channel is closed")
        drained = asyncio.get_running_loop().create_future()
        await raw.write_queue.put(ChannelFrame(payload=b"".join(parts), should_close=False,
                                               drain_future=drained))
        await drained  # written to the socket (the transport's buffer drained): back-pressure

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.conn.close(), TIMEOUT)
        except Exception as exc:
            log.debug("events: amqp close: %s", exc)


async def connect(url: str) -> Publisher:
    if SCHEMES[urlsplit(url).scheme] == "nats":
        return await NatsPublisher.connect(url)
    return await AmqpPublisher.connect(url)


def _open_reader(db: Any) -> Any:
    if db.dialect == "postgresql":
        from store.pg import PgConnection

        return PgConnection.open(db.url, application_name="converger events")
    conn = open_sqlite(db.path, readonly=True)
    conn.execute("PRAGMA busy_timeout = 200")  # on the event loop: never wait long for a lock
    conn.row_factory = None  # plain tuples: store.relay.read takes its columns by position
    return conn


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Relay:
    """Publishes the feed after the stored cursor (a singleton role)."""

    def __init__(self, ctx: Any, url: str) -> None:
        self.ctx, self.url = ctx, url
        self.publisher: Publisher | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poked = False
        # Whether a commit must wake the relay: not while it is busy (it reads again after
        # GATHER anyway), which spares the writer thread a call into the loop per commit.
        self._listening = True
        self._last = self._stored = 0  # the last feed id confirmed by the broker / stored
        self._pending = 0  # events confirmed since the stored cursor
        self._flushed_at = 0.0
        self._conn: Any = None  # the relay's own read connection (sqlite3 or store.pg)

    def committed(self) -> None:
        """Called on the writer thread after a commit of this process."""
        loop = self._loop
        if loop is None or self._poked or not self._listening:
            return
        self._poked = True
        try:
            loop.call_soon_threadsafe(self._on_commit)
        except RuntimeError:  # the loop closed during shutdown
            pass

    def _on_commit(self) -> None:
        self._poked = False
        self._wake.set()

    def poke(self) -> None:
        """On the event loop: the feed may have grown."""
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="event-relay")

    async def stop(self) -> None:
        self._loop = None
        if self._task is not None:
            await cancel_and_wait([self._task], log, "event relay")
            self._task = None
            try:
                await self._flush()
            except Exception as exc:  # the next start publishes again from the stored cursor
                log.warning("events: could not store the relay's position at stop: %s", exc)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        await self._drop()

    def _read(self, last: int, limit: int) -> list[relay.Row]:
        """Feed rows after ``last``: one query (:func:`store.relay.read`), on the event loop's
        thread with a connection of the relay's own (a page of indexed rows: cheaper than the
        hop to the read pool and back, as the feed reader does); on PostgreSQL reopened when it
        broke."""
        conn = self._conn
        if conn is None or getattr(conn, "broken", False):
            if conn is not None:
                conn.close()
            conn = self._conn = _open_reader(self.ctx.db)
        return relay.read(conn, last, limit)

    async def _next(self, last: int) -> tuple[list[relay.Row], list[Message]]:
        """The next round: up to ``BATCH`` feed rows after ``last`` and their messages, read and
        built a ``PAGE`` at a time with a turn of the event loop between pages, so that requests
        keep flowing to the writer while a round is prepared (a round of 1,000 in one go held
        the loop for ~5-10 ms). The first page is read before any ``await``: a commit after it
        sets the wake-up that the caller cleared before."""
        now = _now_iso()
        rows = self._read(last, PAGE)
        if rows:
            self._listening = False  # busy: the caller reads again after GATHER
        msgs = build(rows, now)
        while len(rows) < BATCH and len(rows) % PAGE == 0 and rows:
            await asyncio.sleep(0)
            page = self._read(rows[-1].id, PAGE)
            if not page:
                break
            rows += page
            msgs += build(page, now)
        return rows, msgs

    async def _flush(self) -> None:
        """Store the cursor (what the broker confirmed): at most every ``FLUSH_EVERY`` seconds
        while busy, at once when idle, on a broker failure and at stop. A crash in between
        publishes those events again, with the same ids (at least once)."""
        if self._last > self._stored:
            last, count = self._last, self._pending
            await self.ctx.db.write(relay.advance, last, count, time.time())
            self._stored, self._pending = last, self._pending - count
        self._flushed_at = time.monotonic()

    async def _drop(self) -> None:
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            await publisher.close()

    async def _run(self) -> None:
        db = self.ctx.db
        last = self._last = self._stored = await db.write(relay.start, time.time())
        log.info("events: relay starting at feed position %d for %s", last, redact(self.url))
        failures = 0
        while True:
            try:
                if self.publisher is None:
                    self.publisher = await asyncio.wait_for(connect(self.url), TIMEOUT * 2)
                    await db.write(relay.set_state, "connected", None, time.time())
                    log.info("events: connected to %s", redact(self.url))
                    failures = 0
                self._listening = True
                self._wake.clear()
                events, msgs = await self._next(last)
                if not events:
                    await self._flush()  # idle: the cursor is stored now
                    await wait_event(self._wake, self.ctx.settings.events_poll)
                    continue
                try:
                    await self.publisher.publish_many(msgs)
                except TooLarge:  # one by one: the oversized one goes out without its data
                    for msg in msgs:
                        await self._publish(self.publisher, msg)
                else:
                    for msg in msgs:
                        if msg.truncated:  # over MAX_BYTES: built without its data
                            await db.write(relay.oversized, msg.id, True, time.time())
                self._pending += sum(1 for e in events if e.kind in KINDS)
                last = self._last = events[-1].id
                if time.monotonic() - self._flushed_at >= FLUSH_EVERY:
                    await self._flush()
                if len(events) < BATCH:  # let the next commits gather (a timer, not a wait)
                    await asyncio.sleep(GATHER)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                error = f"{type(exc).__name__}: {exc or 'no answer in time'}"[:500]
                if failures == 1:
                    log.warning("events: broker %s unavailable, activities wait in the outbox "
                                "from feed position %d: %s", redact(self.url), last, error)
                await self._drop()
                try:
                    await self._flush()  # what the broker did confirm
                    await db.write(relay.set_state, "disconnected", error, time.time())
                except Exception as db_exc:
                    log.error("events: could not record the relay state: %s", db_exc)
                self._wake.clear()
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF)) - 1])

    async def _publish(self, publisher: Publisher, msg: Message) -> None:
        """Publish one message. One the broker refuses for its size goes out without its data
        (``truncated: true``, the ids kept: a consumer fetches the rest through the API); one
        refused even so is skipped. Either is logged and counted in ``/readyz``; the relay
        moves on instead of stalling on it."""
        try:
            await publisher.publish(msg)
        except TooLarge as exc:
            log.error("events: the broker refused %s (%s, %d bytes) for its size: %s; "
                      "publishing it without its data (truncated: true)",
                      msg.id, msg.subject, len(msg.body), exc)
            small = Message(msg.subject, msg.id, truncated(msg), True)
            try:
                await publisher.publish(small)
            except TooLarge as again:
                log.error("events: %s is too large for the broker even without its data "
                          "(%d bytes: %s): skipped", msg.id, len(small.body), again)
                await self.ctx.db.write(relay.oversized, msg.id, False, time.time())
                return
            msg = small
        if msg.truncated:
            await self.ctx.db.write(relay.oversized, msg.id, True, time.time())

    async def status(self) -> dict[str, Any]:
        return await readiness(self.ctx)


async def readiness(ctx: Any) -> dict[str, Any]:
    """``/readyz`` ``checks.events``: the relay's stored state (any process answers the same).
    Always ``ok`` — a broker outage does not stop the API — with a warning when not connected."""
    def read(conn: Any) -> tuple[dict[str, Any] | None, int]:
        return relay.position(conn), feed.last_id(conn)

    row, newest = await ctx.db.read(read)
    url = redact(ctx.settings.events_url)
    if row is None:
        return {"ok": True, "state": "starting", "broker": url, "warning": "relay not started"}
    out: dict[str, Any] = {"ok": True, "state": row["state"], "broker": url,
                           "position": row["last_id"], "behind": max(0, newest - row["last_id"]),
                           "published": row["published"],
                           "updated_ago": round(time.time() - row["updated_at"], 1)}
    if row.get("truncated") or row.get("skipped"):
        # Events too large for the broker: published without their data, or skipped.
        out["oversized"] = {"truncated": row["truncated"], "skipped": row["skipped"],
                            "last": row["last_oversized"]}
    if row["state"] != "connected":
        out["warning"] = f"event relay {row['state']}: {row['error'] or 'not connected yet'}"
        out["error"] = row["error"]
    return out


def install(app: Any) -> None:
    """With ``CONVERGER_EVENTS_URL``: the relay as a singleton role, and ``/readyz`` state."""
    ctx = app.ctx
    url = ctx.settings.events_url
    if not url:
        return
    rel = Relay(ctx, url)
    ctx.readiness["events"] = lambda: readiness(ctx)

    @app.after_server_start
    async def _start_relay(app: Any) -> None:
        previous = ctx.db.on_commit

        def on_commit() -> None:
            if previous is not None:
                previous()
            rel.committed()

        ctx.db.on_commit = on_commit

        reader = ctx.feed
        if reader is not None:
            # Another process's commit (its feed datagram) or another node's (PostgreSQL's
            # NOTIFY converger_feed) wakes this process's feed reader, and with it the relay.
            reader.also_wake.append(rel.poke)

        from .cluster import singleton

        await singleton(app, "event relay", rel.start, rel.stop)

    @app.before_server_stop
    async def _stop_relay(app: Any) -> None:
        await rel.stop()
