"""The broker pipeline (``CONVERGER_PIPELINE=rabbitmq|nats``, docs/pipelines.md#broker-pipeline):
delivery jobs travel through RabbitMQ or NATS JetStream to workers on any machine, while the
``deliveries`` table stays the truth (status, attempts, receipts, ``last_error``, schedule).

- **The sweeper** (every process running this backend: ``serve`` and ``converger deliver``) is
  the outbox: it claims due rows with a *handoff* token (``bus:…``, leased like any claim: the
  table's own ``claim_token``/``leased_until``), publishes one job per row and waits for the
  broker's confirmation (RabbitMQ publisher confirms, JetStream acks). A publish that fails gives
  its row back at once; a sweeper that died between the claim's commit and the publish leaves a
  handoff lease that runs out, and the rescuer gives the row back — due again, published again.
  Retries are the same path: a failed attempt sets ``next_attempt_at`` by the 30/90/270/810 s
  schedule (``store.queue.record_failure``) and the sweeper publishes the row when it is due.
- **The workers** (``serve`` unless ``CONVERGER_PIPELINE_CONSUME=0``, and ``converger deliver``)
  claim a job's row when it arrives (:func:`store.queue.take_handed`: the handoff token must
  still be there — a stale or duplicate job claims nothing), make the attempt, record the
  outcome, and only then ack the job. A worker that dies leaves its jobs unacked: RabbitMQ
  requeues them when the channel closes, JetStream after ``ack_wait``; the redelivered job takes
  the row over from the dead worker. Its lease also runs out, so a job lost with its queue is
  republished by the sweeper.

The brokers' own clients (aio-pika, nats-py: the ``rabbitmq`` / ``nats`` extras) do the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from store import queue
from store.models import Delivery
from store.util import parse_iso

from .. import jetstream
from ..context import Gateway
from ..tasks import wait_event
from .delivery import MAX_SLEEP, Outcome, QueueDelivery, Work, _log_failure, load_work

log = logging.getLogger("converger.pipeline")

QUEUE = "converger.deliveries"  # RabbitMQ: a durable queue on the default exchange
STREAM = "CONVERGER_DELIVERIES"  # JetStream: a work-queue stream …
SUBJECT = "converger_deliveries.jobs"  # … on this subject (outside the events' converger.>)
CONSUMER = "converger-deliver"  # … read by one durable pull consumer shared by every worker
HANDOFF = "bus:"  # the claim-token prefix of a row handed to the broker
PUBLISH_BATCH = 500  # rows claimed and published per sweep
CLAIM_BATCH = 200  # arrived jobs claimed in one write
TIMEOUT = 5.0  # seconds for a connection attempt or a publish confirmation
BACKOFF = (0.2, 0.5, 1.0, 2.0)  # seconds between reconnection attempts (then the last)
JOB_VERSION = 1
CLOCK_FILE_LOOK = 0.2  # with CONVERGER_CLOCK_FILE (tests only): the sweeper's longest sleep


class JobMessage(msgspec.Struct, forbid_unknown_fields=False):
    """The delivery job a broker carries (JSON; docs/pipelines.md#the-delivery-job)."""

    v: int
    delivery_id: str
    token: str
    tenant_id: str
    channel_id: str
    attempt: int


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(JobMessage).decode


def job_body(d: Delivery) -> bytes:
    assert d.claim_token is not None
    return _encode(JobMessage(JOB_VERSION, d.id, d.claim_token, d.tenant_id, d.channel_id,
                              d.attempts + 1))


def redact(url: str) -> str:
    from ..events import redact as _redact

    return _redact(url)


class Job:
    """A job as it arrived, with its broker's ack (after the outcome is written) and nack."""

    __slots__ = ("body", "redelivered", "ack", "nack", "progress", "generation")

    def __init__(self, body: bytes, redelivered: bool, ack: Callable[[], Awaitable[Any]],
                 nack: Callable[[], Awaitable[Any]],
                 progress: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.body, self.redelivered, self.ack, self.nack = body, redelivered, ack, nack
        self.progress = progress  # JetStream: "still working on it" (restarts ack_wait)
        self.generation = 0


Handler = Callable[[Job], None]


class RabbitBroker:
    """RabbitMQ: the durable queue ``converger.deliveries``; persistent messages published with
    publisher confirms; consumers with manual acks and a prefetch limit."""

    def __init__(self, conn: Any, channel: Any) -> None:
        self.conn, self.channel = conn, channel
        self.consumer: Any = None
        self.lost = asyncio.Event()
        self.reason = ""

    def _closed(self, _sender: Any = None, exc: BaseException | None = None) -> None:
        self.reason = self.reason or (f"{type(exc).__name__}: {exc}" if exc else "closed")
        self.lost.set()

    @classmethod
    async def connect(cls, url: str, ack_wait: float) -> RabbitBroker:
        import aio_pika

        conn = await aio_pika.connect(url, timeout=TIMEOUT)
        try:
            channel = await conn.channel(publisher_confirms=True)
            await channel.declare_queue(QUEUE, durable=True)
        except BaseException:
            await conn.close()
            raise
        broker = cls(conn, channel)
        conn.close_callbacks.add(broker._closed)
        channel.close_callbacks.add(broker._closed)
        return broker

    async def publish(self, body: bytes, msg_id: str) -> None:
        import aio_pika

        await self.channel.default_exchange.publish(
            aio_pika.Message(body, message_id=msg_id, content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=QUEUE, timeout=TIMEOUT)

    async def consume(self, prefetch: int, handler: Handler, free: Callable[[], int],
                      room: asyncio.Event) -> None:
        channel = await self.conn.channel()
        self.consumer = channel
        channel.close_callbacks.add(self._closed)
        await channel.set_qos(prefetch_count=prefetch)
        q = await channel.declare_queue(QUEUE, durable=True)

        async def on_message(msg: Any) -> None:
            handler(Job(msg.body, bool(msg.redelivered), msg.ack,
                        lambda: msg.nack(requeue=True)))

        await q.consume(on_message, no_ack=False)

    async def close(self) -> None:
        try:
            for channel in (self.consumer, self.channel):
                if channel is not None and not channel.is_closed:
                    await channel.close()
            await self.conn.close()
        except Exception as exc:
            log.debug("pipeline: amqp close: %s", exc)


class NatsBroker:
    """NATS JetStream: the work-queue stream ``CONVERGER_DELIVERIES`` (file storage, created when
    missing), publishes acked by the stream (``Nats-Msg-Id`` = the handoff token, so a repeat
    within the duplicate window is dropped), and one durable pull consumer (explicit acks,
    ``ack_wait``) that every worker fetches from."""

    def __init__(self, nc: Any, js: Any, ack_wait: float) -> None:
        self.nc, self.js, self.ack_wait = nc, js, ack_wait
        self.lost = asyncio.Event()
        self.reason = ""
        self._puller: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, ack_wait: float) -> NatsBroker:
        holder: list[NatsBroker] = []

        async def _gone() -> None:
            if holder:
                holder[0].reason = holder[0].reason or "connection closed"
                holder[0].lost.set()

        nc, js = await jetstream.connect(url, name="pipeline", stream=STREAM, subjects=[SUBJECT],
                                         timeout=TIMEOUT, log=log, work_queue=True,
                                         on_lost=_gone)
        broker = cls(nc, js, ack_wait)
        holder.append(broker)
        return broker

    async def publish(self, body: bytes, msg_id: str) -> None:
        await self.js.publish(SUBJECT, body, timeout=TIMEOUT, headers={"Nats-Msg-Id": msg_id})

    async def consume(self, prefetch: int, handler: Handler, free: Callable[[], int],
                      room: asyncio.Event) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig

        sub = await self.js.pull_subscribe(
            SUBJECT, durable=CONSUMER, stream=STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                  max_deliver=-1, max_ack_pending=-1))
        self._puller = asyncio.create_task(self._pull(sub, handler, free, room),
                                           name="pipeline-pull")

    async def _pull(self, sub: Any, handler: Handler, free: Callable[[], int],
                    room: asyncio.Event) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        try:
            while True:
                n = free()
                if n <= 0:
                    room.clear()
                    if free() <= 0:
                        await room.wait()
                    continue
                try:
                    msgs = await sub.fetch(n, timeout=1.0)
                except (TimeoutError, NatsTimeout):
                    continue
                for m in msgs:
                    handler(Job(m.data, m.metadata.num_delivered > 1, m.ack, m.nak,
                                m.in_progress))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.reason = self.reason or f"{type(exc).__name__}: {exc}"
            self.lost.set()

    async def close(self) -> None:
        if self._puller is not None:
            self._puller.cancel()
            await asyncio.gather(self._puller, return_exceptions=True)
        try:
            await self.nc.close()
        except Exception as exc:
            log.debug("pipeline: nats close: %s", exc)


Broker = RabbitBroker | NatsBroker


async def connect(kind: str, url: str, ack_wait: float) -> Broker:
    if kind == "nats":
        return await NatsBroker.connect(url, ack_wait)
    return await RabbitBroker.connect(url, ack_wait)


def take_tx(conn: sqlite3.Connection, jobs: list[tuple[str, str, bool]], owner: str, now: str,
            lease: float) -> list[Work]:
    return load_work(conn, queue.take_handed(conn, jobs, owner, now, lease))


class BrokerDelivery(QueueDelivery):
    """The sweeper (publisher), the connection, and — when ``consume`` — the claimer and the
    workers (see the module's docstring)."""

    def __init__(self, gw: Gateway, consume: bool) -> None:
        super().__init__(gw)
        settings = gw.settings
        self.kind, self.url, self.consume = settings.pipeline, settings.pipeline_url, consume
        # This process's claim-token prefix: its leases are its own (given back when it stops).
        self.owner = f"w{secrets.token_hex(6)}:"
        self.prefetch = 2 * self.concurrency
        # JetStream redelivers a job not acked in time: longer than one attempt and its write.
        self.ack_wait = 2 * self.timeout + 5
        self.broker: Broker | None = None
        self.connected = asyncio.Event()
        self.state, self.error = "connecting", ""
        self.since = time.monotonic()
        self.jobs: list[Job] = []  # arrived, not yet claimed
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self.acks: dict[str, Job] = {}  # worker claim token → its job (acked after the outcome)
        self.unacked = 0  # jobs of the current connection not yet acked
        self.generation = 0
        self.published = 0
        self.skipped = 0
        self._unconfirmed: set[str] = set()  # handoff tokens being published

    # -- lifecycle --------------------------------------------------------------------------
    def _start_tasks(self) -> None:
        self.tasks.append(asyncio.create_task(self._maintain(), name="pipeline-connection"))
        self.tasks.append(asyncio.create_task(self._dispatch(), name="pipeline-sweeper"))
        self.tasks.append(asyncio.create_task(self._rescue(), name="delivery-rescuer"))
        if self.consume:
            self.tasks.append(asyncio.create_task(self._claimer(), name="pipeline-claimer"))
            for i in range(self.concurrency):
                self.tasks.append(asyncio.create_task(self._work(), name=f"delivery-worker-{i}"))
            if self.kind == "nats":
                self.tasks.append(asyncio.create_task(self._keepalive(), name="pipeline-progress"))

    async def stop(self) -> None:
        await super().stop()  # tasks stopped, outcomes written, this process's leases given back
        if self._unconfirmed and self.gw.db_open:  # handed over, publishing interrupted
            unconfirmed, self._unconfirmed = list(self._unconfirmed), set()
            await self.gw.db.write(queue.release, unconfirmed)
        broker, self.broker = self.broker, None
        if broker is not None:  # unacked jobs go back to the queue; their rows are free again
            await broker.close()

    def alive(self) -> dict[str, Any]:
        running = sum(1 for t in self.tasks if not t.done())
        out: dict[str, Any] = {
            "ok": bool(self.tasks) and running == len(self.tasks), "pipeline": self.kind,
            "broker": redact(self.url), "state": self.state, "consuming": self.consume,
            "workers": self.concurrency if self.consume else 0, "in_flight": len(self.held),
            "published": self.published}
        if self.state != "connected":
            out["warning"] = (f"delivery broker {self.state} for "
                              f"{time.monotonic() - self.since:.0f}s: deliveries wait in the "
                              f"table ({self.error or 'not connected yet'})")
            out["error"] = self.error
        return out

    async def enqueued(self, activity: Any, count: int) -> None:
        self._wake.set()  # any process's sweeper may publish it: this one is enough

    # -- the connection ---------------------------------------------------------------------
    def _set_down(self, error: str, announce: bool) -> None:
        if self.state == "connected" or announce:
            log.warning("pipeline: broker %s unavailable, deliveries wait in the table: %s",
                        redact(self.url), error)
        if self.state == "connected":
            self.since = time.monotonic()
        self.state, self.error = "disconnected", error[:500]

    async def _maintain(self) -> None:
        failures = 0
        while True:
            try:
                broker = await asyncio.wait_for(connect(self.kind, self.url, self.ack_wait),
                                                TIMEOUT * 2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._set_down(f"{type(exc).__name__}: {exc or 'no answer in time'}",
                               failures == 1)
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF)) - 1])
                continue
            self.generation += 1
            self.unacked = 0
            self.broker = broker
            try:
                if self.consume:
                    await broker.consume(self.prefetch, self._arrive, self._free, self._room)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.broker = None
                await broker.close()
                failures += 1
                self._set_down(f"{type(exc).__name__}: {exc}", failures == 1)
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF)) - 1])
                continue
            failures = 0
            self.state, self.error = "connected", ""
            self.since = time.monotonic()
            log.info("pipeline: connected to %s (%s%s)", redact(self.url), self.kind,
                     f", {self.concurrency} workers" if self.consume else ", publishing only")
            self.connected.set()
            self._wake.set()
            try:
                await broker.lost.wait()
            finally:  # lost, or stopping (stop() then closes self.broker)
                self.connected.clear()
            self.broker = None
            self._set_down(broker.reason or "connection lost", True)
            # Jobs of the lost connection not claimed yet: the broker offers them again.
            self.jobs.clear()
            await broker.close()

    def _free(self) -> int:
        return self.prefetch - self.unacked

    def _arrive(self, job: Job) -> None:
        job.generation = self.generation
        self.unacked += 1
        self.jobs.append(job)
        self._arrived.set()

    async def _settle(self, job: Job, ack: bool = True) -> None:
        if job.generation == self.generation:
            self.unacked -= 1
            self._room.set()
        try:
            await (job.ack() if ack else job.nack())
        except Exception as exc:  # its connection is gone: the broker redelivers it
            log.debug("pipeline: %s failed: %s", "ack" if ack else "nack", exc)

    async def _keepalive(self) -> None:
        """JetStream redelivers a job not acked within ``ack_wait``: the jobs this live worker
        holds say "in progress" every third of it, so only a dead worker's jobs come again."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)  # a timer, not a wait for work
            for job in [*self.jobs, *self.acks.values()]:
                if job.progress is not None and job.generation == self.generation:
                    try:
                        await job.progress()
                    except Exception as exc:  # the connection is gone: redelivered anyway
                        log.debug("pipeline: in-progress failed: %s", exc)
                        break

    # -- the sweeper: due rows → the broker -------------------------------------------------
    async def _dispatch_once(self) -> None:
        await self.connected.wait()
        broker = self.broker
        if broker is None:
            return
        db = self.gw.db
        self._wake.clear()  # before claiming: a wake-up that races the claim is not lost
        rows = await db.write(queue.claim, self.gw.now_iso(), self.lease, PUBLISH_BATCH,
                              HANDOFF)
        if rows:
            await self._publish(broker, rows)
            return
        due = await db.read(queue.next_due_at)
        delay = MAX_SLEEP
        if due is not None:
            delay = min(MAX_SLEEP, (parse_iso(due) - parse_iso(self.gw.now_iso()))
                        .total_seconds())
        if self.gw.settings.clock_file:  # tests only: their clock moves without waking anyone
            delay = min(delay, CLOCK_FILE_LOOK)
        if delay > 0:
            await wait_event(self._wake, delay)

    async def _publish(self, broker: Broker, rows: list[Delivery]) -> None:
        tokens = {d.claim_token or "" for d in rows}
        self._unconfirmed |= tokens  # given back by stop() if it interrupts the publishing
        results = await asyncio.gather(  # cancelled (stopping): the tokens stay for stop()
            *(broker.publish(job_body(d), d.claim_token or "") for d in rows),
            return_exceptions=True)
        self._unconfirmed -= tokens
        failed = [d.claim_token for d, r in zip(rows, results, strict=True)
                  if isinstance(r, BaseException)]
        self.published += len(rows) - len(failed)
        if failed:
            # Not confirmed: due again now (a job that did reach the broker finds its row given
            # back or handed again under another token, and claims nothing).
            await self.gw.db.write(queue.release, [t for t in failed if t])
            first = next(r for r in results if isinstance(r, BaseException))
            broker.reason = broker.reason or f"publish failed: {type(first).__name__}: {first}"
            broker.lost.set()

    # -- the workers: arrived jobs → claimed rows → attempts ---------------------------------
    async def _claimer(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self.jobs:
                batch, self.jobs = self.jobs[:CLAIM_BATCH], self.jobs[CLAIM_BATCH:]
                try:
                    await self._take(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # e.g. a disk error: the broker offers them again
                    _log_failure(self.gw.log, f"pipeline: claiming {len(batch)} jobs failed", exc)
                    for job in batch:
                        await self._settle(job, ack=False)

    async def _take(self, batch: list[Job]) -> None:
        wanted: dict[str, tuple[Job, JobMessage]] = {}
        for job in batch:
            try:
                msg = _decode(job.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("pipeline: dropping a job that is not a delivery job: %s", exc)
                await self._settle(job)
                continue
            if msg.token in wanted:  # the same job twice in one batch
                await self._settle(job)
                continue
            wanted[msg.token] = (job, msg)
        if not wanted:
            return
        works = await self.gw.db.write(
            take_tx, [(m.delivery_id, m.token, j.redelivered) for j, m in wanted.values()],
            self.owner, self.gw.now_iso(), self.lease)
        claimed = {w.delivery.claim_token: w for w in works}
        for token, (job, _msg) in wanted.items():
            work = claimed.get(self.owner + token)
            if work is None:  # already final, handed again, or taken by a live worker
                self.skipped += 1
                await self._settle(job)
                continue
            self._hold(work)
            self.acks[self.owner + token] = job
            self.buffer.put_nowait(work)

    async def _write(self, batch: list[Outcome]) -> None:
        try:
            await super()._write(batch)
        finally:
            # Acked once the outcome is recorded (or could not be: the row's lease then runs out
            # and the rescuer gives it back to the sweeper).
            for o in batch:
                job = self.acks.pop(o.token, None)
                if job is not None:
                    await self._settle(job)
