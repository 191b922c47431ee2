"""The delivery backends (``gw.delivery``): claim due rows from the queue table, run each
channel's middleware and adapter, record the outcome.

``QueueDelivery`` (the default): one dispatcher task claims batches (one ``UPDATE … RETURNING``
per batch keeps the single writer cheap) into an in-memory buffer;
``CONVERGER_DELIVERY_CONCURRENCY`` worker tasks take from it and share one aiohttp session. The
dispatcher is woken at once by new work (the domain calls ``enqueued`` after commit); otherwise
it sleeps until the next row is due — no polling. A rescuer reclaims expired leases at start-up
and periodically; on shutdown every lease still held is released, so nothing waits for a lease
to expire after a clean stop.

``InlineDelivery`` (``CONVERGER_PIPELINE=inline``, development) makes one attempt per delivery
inside ``enqueued``, that is before the request that created the activity answers; a failure
there is final.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import aiohttp
import msgspec

import adapters
from adapters import middleware
from adapters.base import ChannelInfo, DeliveryResult, OutboundActivity
from store import analytics, channels, feed, queue, threads
from store.models import Activity, Channel, Delivery
from store.util import parse_iso

from .. import errors, metrics, outbound, tierlimits, tracing
from ..config import BROKER_PIPELINES
from ..context import Gateway
from ..domain.channels import channel_info
from ..domain.media import public_links
from ..domain.receipts import publish
from ..shapes import delivery_status
from ..tasks import cancel_and_wait, wait_event
from . import health

LEASE_SECONDS = 120.0  # longer than a batch can wait in the buffer plus one attempt
MAX_SLEEP = 60.0


class Work(msgspec.Struct):
    delivery: Delivery
    activity: Activity | None
    channel: Channel | None
    thread_sender: str | None
    in_reply_to: dict[str, Any] = {}


def claim_tx(conn: sqlite3.Connection, now: str, lease: float, limit: int,
             activity_id: str | None = None, owner: str = "") -> list[Work]:
    """Claim due rows (or one activity's rows) and load what sending them needs. ``owner``
    prefixes the claim tokens (a worker process's slot, see :meth:`Engine._release_tx`)."""
    if activity_id is None:
        claimed = queue.claim(conn, now, lease, limit, owner)
    else:
        claimed = queue.claim_activity(conn, activity_id, now, lease, owner)
    return load_work(conn, claimed)


def load_work(conn: sqlite3.Connection, claimed: list[Delivery]) -> list[Work]:
    """What sending these claimed rows needs: activity, channel, thread sender, reply context."""
    if not claimed:
        return []
    acts = queue.activities_for(conn, claimed)
    senders = queue.thread_senders(conn, claimed)
    chans = {c.id: c for c in channels.many(conn, list({d.channel_id for d in claimed}))}
    # The mail a reply answers, for the types that thread by it (e-mail).
    wanting = [d for d in claimed if d.channel_id in chans
               and getattr(adapters.get(chans[d.channel_id].type), "reply_context", False)]
    contexts = queue.reply_contexts(conn, wanting, acts) if wanting else {}
    return [Work(d, acts.get(d.activity_id), chans.get(d.channel_id), senders.get(d.id),
                 contexts.get(d.id, {}))
            for d in claimed]


EARLY_HEALTH_GAP = 30.0


class Outcome(msgspec.Struct):
    delivery: Delivery
    token: str
    at: str
    result: DeliveryResult
    duration_ms: int | None = None


def outcomes_tx(conn: sqlite3.Connection, batch: list[Outcome], scale: float,
                retries: bool) -> list[Delivery | None]:
    """Write attempts' outcomes; each row changes only if its claim token still holds.

    The successes' feed events, attempt rows and analytics counts are written after their
    updates, each kind with one statement for the batch (in the batch's order)."""
    out: list[Delivery | None] = []
    tally = analytics.Tally()
    events: list[tuple[str, Any]] = []
    attempts: list[tuple[str, str, bool, str, str | None, int | None]] = []
    for o in batch:
        d, r = o.delivery, o.result
        if r.ok:
            row = queue.complete(conn, d.id, o.token, o.at, r.provider_message_id, r.metadata,
                                 tally)
            if row is not None:
                # What receipts.publish announces, read by every process.
                events.append((row.conversation_id, delivery_status(row)))
                attempts.append((d.id, o.at, True, "sent", r.provider_message_id,
                                 o.duration_ms))
                if r.thread_key:
                    # The send opened the conversation's thread on this channel
                    # (adapters/base.py).
                    threads.link(conn, channel_id=d.channel_id, thread_key=r.thread_key,
                                 conversation_id=d.conversation_id, tenant_id=d.tenant_id,
                                 now=o.at)
            out.append(row)
        else:
            row = queue.fail(conn, d.id, o.token, o.at, outbound.summary(r.error) or "failed",
                             r.retryable and retries, r.retry_after, scale=scale)
            if row is not None:  # the delivery page lists every attempt, its error in full
                queue.record_attempt(conn, d.id, o.at, False,
                                     "failed" if row.status == "failed" else "will retry",
                                     r.error or "failed", o.duration_ms)
            out.append(row)
    feed.append_many(conn, "d", events)
    queue.record_attempts(conn, attempts)
    tally.flush(conn)
    return out


class Engine:
    """What both backends share: one attempt, its outcome, the lease bookkeeping."""

    inline = False

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        settings = gw.settings
        self.concurrency = settings.delivery_concurrency
        self.batch = max(2 * self.concurrency, 16)
        self.scale = settings.backoff_scale
        self.timeout = settings.webhook_timeout
        # A claimed row may wait in the buffer behind two rounds of attempts before its own.
        self.lease = settings.delivery_lease or max(LEASE_SECONDS, 4 * self.timeout + 30)
        self.rescue_every = settings.lease_rescue_interval
        self.held: dict[str, Delivery] = {}  # claim token → row, until its outcome is written
        self.tasks: list[asyncio.Task[Any]] = []
        self.spawned: set[asyncio.Task[Any]] = set()
        self.session: aiohttp.ClientSession | None = None
        self.buffer: asyncio.Queue[Work] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        # channel id → monotonic time of its last early health check
        self._early_health: dict[str, float] = {}
        self._infos: dict[str, tuple[str, ChannelInfo]] = {}
        self.attempts = 0
        self._outcomes: list[Outcome] = []
        self._flushing: asyncio.Task[None] | None = None
        # With several worker processes: this slot's claim-token prefix (its leases are its own).
        # On PostgreSQL: this node's (gateway/nodes.py); a dead node's leases run out instead.
        self.owner = (gw.cluster.claim_prefix if gw.cluster is not None
                      else f"{gw.node.id}:" if gw.node is not None else "")

    def _release_tx(self, conn: sqlite3.Connection, now: str) -> int:
        """Leases to give back at start and stop: all of them in a one-process gateway (a
        previous process's, or ours); with several processes only this worker slot's (its own,
        or its killed predecessor's: no other process uses the slot's prefix)."""
        if self.owner:
            return queue.release_owned(conn, "deliveries", self.owner, now)
        return queue.rescue_all(conn, now)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        gw = self.gw
        # Under the outbound policy: resolved addresses checked on connect, no redirects.
        self.session = outbound.session(
            gw.settings, aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout),
            limit=2 * self.concurrency, keepalive_timeout=30,
        )
        rescued = await gw.db.write(self._release_tx, gw.now_iso())
        if rescued:
            gw.log.info("delivery: reclaimed %d leases of a previous run", rescued)
        self._start_tasks()

    def _start_tasks(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Look for due work now (a sibling process enqueued some)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop every task, then give back the leases still held (in flight or buffered)."""
        started = time.monotonic()
        await cancel_and_wait([*self.tasks, *self.spawned], self.gw.log, "delivery: stopping")
        self.tasks.clear()
        if self._flushing is not None:  # outcomes already known are written, not redone
            await asyncio.gather(self._flushing, return_exceptions=True)
        if self.gw.db_open:
            # Every lease of ours (of this worker slot, with several processes): the ones in
            # `held`, and any claim whose write committed just as its awaiting task was cancelled.
            released = await self.gw.db.write(self._release_tx, self.gw.now_iso())
            self.held.clear()
            self.gw.log.info("delivery: workers stopped in %.2fs, %s leases released",
                                  time.monotonic() - started, released)
        if self.session is not None:
            await self.session.close()
            self.session = None

    def alive(self) -> dict[str, Any]:
        raise NotImplementedError

    async def enqueued(self, activity: Activity | None, count: int) -> None:
        raise NotImplementedError

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.spawned.add(task)
        task.add_done_callback(self.spawned.discard)

    def _hold(self, work: Work) -> None:
        token = work.delivery.claim_token
        assert token is not None, "a claimed row always carries its claim token"
        self.held[token] = work.delivery

    # -- one attempt ------------------------------------------------------------------------
    def _info(self, channel: Channel) -> ChannelInfo:
        """Decrypted channel info, cached until the channel row changes."""
        cached = self._infos.get(channel.id)
        if cached is None or cached[0] != channel.updated_at:
            settings = self.gw.settings
            base = settings.public_url or f"http://{settings.host}:{settings.port}"
            cached = (channel.updated_at, channel_info(self.gw.cipher, channel, base))
            self._infos[channel.id] = cached
        return cached[1]

    async def _send(self, work: Work) -> DeliveryResult:
        d, activity, channel = work.delivery, work.activity, work.channel
        if activity is None or channel is None:
            return DeliveryResult(ok=False, error="activity or channel no longer exists",
                                  retryable=False)
        if channel.status != "active":
            return DeliveryResult(ok=False, error="channel is inactive", retryable=False)
        adapter = adapters.get(channel.type)
        if adapter is None:
            return DeliveryResult(ok=False, error=f"no adapter for {channel.type}", retryable=False)
        outbound = OutboundActivity(
            id=activity.id, type=activity.type, sender=activity.sender, text=activity.text,
            attachments=public_links(self.gw, activity.tenant_id, activity.attachments),
            metadata=activity.metadata,
            conversation_id=activity.conversation_id, tenant_id=activity.tenant_id,
            timestamp=activity.inserted_at, seq=activity.seq, delivery_id=d.id,
            thread_sender=work.thread_sender, extra=activity.extra,
            in_reply_to=work.in_reply_to,
        )
        try:
            outbound = middleware.apply(channel.transformations, outbound)
        except middleware.Halt as halt:  # final: the same text would be blocked again
            return DeliveryResult(ok=False, error=f"halted: {halt}", retryable=False)
        try:
            return await adapter.deliver(self.session, self._info(channel), outbound)
        except Exception as exc:  # an adapter bug counts as a failed, retryable attempt
            self.gw.log.exception("delivery %s: adapter %s raised", d.id, channel.type)
            return DeliveryResult(ok=False, error=f"adapter error: {exc!r}")

    async def attempt(self, work: Work) -> None:
        """Send one claimed delivery and record its outcome (checked against its claim token).

        With the queue backend the outcome is written in the background, batched with other
        workers' outcomes (one write job for many rows), and the worker moves on at once;
        inline, the request waits for it."""
        d = work.delivery
        limiter = self.gw.delivery_limiter
        if limiter is not None and work.channel is not None:
            # Per-channel pacing (the tenant's SLA tier's rate, if it sets one): wait, don't fail.
            tier = await tierlimits.of(self.gw, d.tenant_id)
            rate = tier.deliveries_per_min / 60 if tier and tier.deliveries_per_min else None
            delay = limiter.acquire(work.channel.id, rate)
            if delay > 0:
                await asyncio.sleep(delay)
        started = time.perf_counter()
        if tracing.enabled():
            with tracing.span(f"deliver {work.channel.type if work.channel else 'unknown'}", **{
                    "converger.delivery_id": d.id, "converger.channel_id": d.channel_id,
                    "converger.attempt": d.attempts + 1}) as s:
                result = await self._send(work)
                s.set_attribute("converger.outcome", "sent" if result.ok else (
                    "retry" if result.retryable else "failed"))
        else:
            result = await self._send(work)
        self.attempts += 1
        metrics.delivery_finished(
            work.channel.type if work.channel else "unknown",
            "sent" if result.ok else ("retry" if result.retryable else "failed"),
            time.perf_counter() - started,
        )
        outcome = Outcome(d, d.claim_token or "", self.gw.now_iso(), result,
                          int((time.perf_counter() - started) * 1000))
        if self.inline:
            await self._write([outcome])
            return
        self._outcomes.append(outcome)
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="delivery-outcomes")

    async def _flush(self) -> None:
        try:
            while self._outcomes:
                batch, self._outcomes = self._outcomes, []
                try:
                    await self._write(batch)
                except Exception as exc:
                    # Not recorded (e.g. the disk is full): the rows stay leased, the rescuer
                    # gives them back when the lease ends, and they are sent again (at least
                    # once; same webhook-id).
                    _log_failure(self.gw.log,
                                 f"delivery: {len(batch)} outcomes not recorded", exc)
        finally:
            self._flushing = None

    async def _write(self, batch: list[Outcome]) -> None:
        ctx = self.gw
        rows = await ctx.db.write(outcomes_tx, batch, self.scale, not self.inline)
        for outcome, row in zip(batch, rows, strict=True):
            self.held.pop(outcome.token, None)
            result = outcome.result
            if result.ok:
                if row is not None:
                    publish(self.gw, row)
                continue
            ctx.log.info("delivery %s to channel %s failed: %s", outcome.delivery.id,
                         outcome.delivery.channel_id, result.error)
            if row is not None and row.status == "pending":
                # A new due time the sleeping dispatcher does not know of: let it look again.
                self._wake.set()
        await self._check_health_early(batch)
        # After the early check, which goes by the failure rate only: a provider that refused
        # the channel's credentials makes it unhealthy whatever the rate (one refusal after
        # three successes is "degraded" by rate, and would otherwise overwrite the mark).
        refused = {o.delivery.channel_id for o in batch if o.result.channel_unhealthy}
        for channel_id in refused:
            try:
                await health.mark_unhealthy(ctx, channel_id, parse_iso(ctx.now_iso()))
            except Exception as exc:  # the next health run sees the failures anyway
                _log_failure(ctx.log, f"delivery: marking channel {channel_id} unhealthy failed",
                             exc)

    async def _check_health_early(self, batch: list[Outcome]) -> None:
        """Failures began: check the channels' health now rather than at the next periodic
        run (up to ``CONVERGER_HEALTH_INTERVAL``, 5 min, of "unknown" while every delivery
        fails), at most once per ``EARLY_HEALTH_GAP`` seconds for each failing channel."""
        now = time.monotonic()
        due = {o.delivery.channel_id for o in batch if not o.result.ok
               and now - self._early_health.get(o.delivery.channel_id, -EARLY_HEALTH_GAP)
               >= EARLY_HEALTH_GAP}
        if not due:
            return
        if len(self._early_health) > 10_000:
            self._early_health.clear()
        self._early_health.update(dict.fromkeys(due, now))
        try:
            await health.run(self.gw, parse_iso(self.gw.now_iso()))
        except Exception as exc:  # the periodic run checks them anyway
            _log_failure(self.gw.log, "delivery: early health check failed", exc)


def _log_failure(log: Any, what: str, exc: BaseException) -> None:
    """A storage condition (disk full, I/O error) is one line, not a traceback: it repeats
    every round until the operator fixes the disk, and must not fill what is left of it."""
    if isinstance(exc, sqlite3.OperationalError) and errors.storage_error(exc) is not None:
        log.error("%s: %s (%s)", what, exc, getattr(exc, "sqlite_errorname", ""))
    else:
        log.exception(what, exc_info=exc)


class InlineDelivery(Engine):
    """One attempt per delivery of a new activity, before ``enqueued`` returns (development)."""

    inline = True

    def _start_tasks(self) -> None:
        self._spawn(self.drain_once())  # what a previous run left in the queue

    def alive(self) -> dict[str, Any]:
        return {"ok": self.session is not None, "pipeline": "inline"}

    async def enqueued(self, activity: Activity | None, count: int) -> None:
        if activity is not None:
            gw = self.gw
            await self._attempt_all(await gw.db.write(claim_tx, gw.now_iso(), self.lease, 0,
                                                      activity.id, self.owner))
        else:  # made due by hand (a retry, a tenant enabled): nothing else will pick it up
            self._spawn(self.drain_once())

    async def drain_once(self) -> None:
        gw = self.gw
        while batch := await gw.db.write(claim_tx, gw.now_iso(), self.lease, self.batch, None,
                                         self.owner):
            await self._attempt_all(batch)

    async def _attempt_all(self, batch: list[Work]) -> None:
        for work in batch:
            self._hold(work)
        await asyncio.gather(*(self.attempt(w) for w in batch))


class QueueDelivery(Engine):
    """The dispatcher, the workers and the rescuer (see the module's docstring)."""

    def _start_tasks(self) -> None:
        self.tasks.append(asyncio.create_task(self._dispatch(), name="delivery-dispatcher"))
        self.tasks.append(asyncio.create_task(self._rescue(), name="delivery-rescuer"))
        for i in range(self.concurrency):
            self.tasks.append(asyncio.create_task(self._work(), name=f"delivery-worker-{i}"))

    def alive(self) -> dict[str, Any]:
        running = sum(1 for t in self.tasks if not t.done())
        return {"ok": bool(self.tasks) and running == len(self.tasks), "workers": running,
                "in_flight": len(self.held)}

    async def enqueued(self, activity: Activity | None, count: int) -> None:
        """New (or retried) work is due now: wake the dispatcher (and, with several worker
        processes, the others': any process may claim it)."""
        self._wake.set()
        if self.gw.cluster is not None:
            self.gw.cluster.notifier.tell(b"Q")

    async def _dispatch(self) -> None:
        while True:
            try:
                await self._dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. a disk error: keep the dispatcher alive, try again soon
                _log_failure(self.gw.log, "delivery dispatcher: claim failed", exc)
                await asyncio.sleep(1.0)

    async def _dispatch_once(self) -> None:
        """Fill the buffer with one claimed batch, or sleep until work is due or arrives."""
        db = self.gw.db
        while self.buffer.qsize() >= self.concurrency:
            self._drained.clear()
            if self.buffer.qsize() < self.concurrency:
                break
            await self._drained.wait()
        # Cleared before claiming: a wake-up that races the claim is not lost.
        self._wake.clear()
        limit = self.batch - self.buffer.qsize()
        batch = await db.write(claim_tx, self.gw.now_iso(), self.lease, limit, None, self.owner)
        if batch:
            for work in batch:
                self._hold(work)
                self.buffer.put_nowait(work)
            return
        due = await db.read(queue.next_due_at)
        delay = MAX_SLEEP
        if due is not None:
            delay = min(MAX_SLEEP, (parse_iso(due) - parse_iso(self.gw.now_iso()))
                        .total_seconds())
        if delay > 0:
            await wait_event(self._wake, delay)

    async def _work(self) -> None:
        log = self.gw.log
        while True:
            work = await self.buffer.get()
            if self.buffer.qsize() < self.concurrency:
                self._drained.set()
            try:
                await self.attempt(work)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the worker; the lease expires and retries
                log.exception("delivery %s: attempt crashed", work.delivery.id)

    async def _rescue(self) -> None:
        ctx = self.gw
        while True:
            await asyncio.sleep(self.rescue_every)  # a timer, not a wait for work
            try:
                if await ctx.db.write(queue.rescue_expired, ctx.now_iso()):
                    self._wake.set()
            except Exception as exc:  # logged; the next round tries again
                _log_failure(ctx.log, "delivery rescuer failed", exc)


def install(app: Any) -> None:
    """Attach the delivery backend to the gateway: now, so requests can hand it work; its tasks
    once the server (and database) is up."""
    gw: Gateway = app.ctx
    engine: Engine
    if gw.settings.pipeline in BROKER_PIPELINES:
        from .broker import BrokerDelivery  # its module imports this one

        engine = BrokerDelivery(gw, consume=gw.settings.pipeline_consume)
    else:
        engine = (InlineDelivery if gw.settings.pipeline == "inline" else QueueDelivery)(gw)
    gw.delivery = engine
    gw.readiness["delivery"] = engine.alive

    @app.after_server_start
    async def _start_delivery(app: Any) -> None:
        await engine.start()

    # before_server_stop: the database is still open (it closes after the server stops).
    @app.before_server_stop
    async def _stop_delivery(app: Any) -> None:
        await engine.stop()
