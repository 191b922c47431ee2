"""The change feed between processes, read into this process's hub.

With several workers, nothing is published to sockets straight from the request that made it:
every process — the one that committed the change included — publishes what it reads from the
``feed`` table (:mod:`store.feed`), in ``id`` order, which is commit order. So each socket, in
whichever process it lives, sees every activity of its conversation in ``seq`` order and once
(and the socket's own ``seq`` check still guards the join's replay). ``delivery_status``,
``attachment_status`` and ``health_changed`` travel the same way; an ``i`` event drops a cache (the tenant/API-key cache).

The reader sleeps until woken: by this process's own commits (the writer thread's
``on_commit``) or by a sibling's datagram (:class:`gateway.cluster.Notifier`); it also looks
every ``SAFETY_POLL`` seconds in case a wake-up went missing. Each look reads everything after
its cursor in pages of ``PAGE``, on the event loop's thread with a read connection of its own
(a few indexed rows: cheaper than the hop to the read pool and back). After a look that found
something it lets wake-ups gather for ``GAP`` seconds (``IDLE_GAP`` while this process has no
socket to tell: then only the caches wait on it), so a busy gateway reads the feed a few hundred
times a second, not once per commit of every process. A process that slept so long that the events it had not read
were pruned (``RETENTION``) cannot tell its sockets what they missed: it closes them (clients
reconnect and resume from the store, as after any disconnect) and carries on from the present.

The pruner (a singleton role) deletes events older than ``RETENTION`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from store import analytics, feed, relay
from store.connect import connect

from .tasks import cancel_and_wait, wait_event

log = logging.getLogger("converger.feed")

SAFETY_POLL = 2.0
GAP = 0.002
IDLE_GAP = 0.05
PAGE = 2000
RETENTION = 90.0  # seconds an event stays readable
PRUNE_EVERY = 15.0


class FeedReader:
    """``ctx.feed``: this process's cursor in the feed, and the loop that follows it."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.cursor = 0
        self.published = 0
        self.caches: dict[str, Callable[[], None]] = {}
        # Also woken with the reader (on the loop) by another process's or node's commit: a
        # sibling's datagram or PostgreSQL's NOTIFY (the event relay, gateway/events.py).
        self.also_wake: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poked = False
        self._conn: Any = None  # a sqlite3.Connection or a store.pg.PgConnection

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = self._open()
        self.cursor = self._read(feed.last_id)
        self._task = asyncio.create_task(self._run(), name="feed-reader")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], log, "feed reader")
            self._task = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _open(self) -> Any:
        db = self.ctx.db
        if db.dialect == "postgresql":  # one round trip on loopback or a LAN: ~0.1-1 ms
            from store.pg import PgConnection

            return PgConnection.open(db.url, application_name="converger feed")
        conn = connect(db.path, readonly=True)
        # On the event loop: never wait long for a lock (the next wake-up tries again).
        conn.execute("PRAGMA busy_timeout = 200")
        return conn

    def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(conn, *args)`` in one read transaction on this reader's own connection (on
        PostgreSQL reopened when it broke: the next look reads from the cursor on)."""
        conn = self._conn
        assert conn is not None
        if getattr(conn, "broken", False):
            conn.close()
            conn = self._conn = self._open()
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    def wake(self) -> None:
        self._wake.set()
        for wake in self.also_wake:
            wake()

    def committed(self) -> None:
        """Called on the writer thread after each commit that changed something."""
        if self._loop is None or self._poked:
            return
        self._poked = True
        try:
            self._loop.call_soon_threadsafe(self._on_commit)
        except RuntimeError:  # the loop closed during shutdown
            pass

    def _on_commit(self) -> None:
        self._poked = False
        self._wake.set()
        cluster = self.ctx.cluster
        if cluster is not None:
            cluster.notifier.tell(b"F")

    async def _run(self) -> None:
        while True:
            await wait_event(self._wake, SAFETY_POLL)
            self._wake.clear()
            try:
                found = await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. an I/O error: the next wake-up tries again
                log.error("feed: read failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if found:  # let the next wake-ups gather (a timer, not a wait for work)
                await asyncio.sleep(GAP if self.ctx.hub.has_subscribers() else IDLE_GAP)

    async def catch_up(self) -> int:
        """Publish every event after the cursor; returns how many."""
        n = 0
        hub = self.ctx.hub
        while True:
            # Only the activities of conversations with sockets here are loaded (a view of the
            # hub's topics: no set of thousands of conversations built per look).
            wanted = hub.conversations()
            events = self._read(feed.after, self.cursor, PAGE, wanted)
            if not events:
                return n
            if events[0].id > self.cursor + 1:
                await self._fell_behind(events[0].id - self.cursor - 1)
            # A socket that subscribed while the page was read still gets its activities.
            late = [e.ref for e in events if e.kind == "a" and e.activity is None and e.ref
                    and e.topic in wanted]
            if late:
                found = self._read(feed.activities, late)
                for e in events:
                    if e.kind == "a" and e.activity is None and e.ref in found:
                        e.activity = found[e.ref]
            for event in events:
                if event.id <= self.cursor:  # a page read while another was published
                    continue
                self.cursor = event.id
                self._publish(event)
                n += 1
                self.published += 1
                # Let the sockets' sender tasks run between two events, as they do between two
                # requests in one process: a page of events published in one go would fill a
                # healthy socket's send queue as if it were a stalled one.
                await asyncio.sleep(0)
            if len(events) < PAGE:
                return n

    def _publish(self, event: feed.Event) -> None:
        hub = self.ctx.hub
        if event.kind == "a":
            if event.activity is not None:
                hub.publish(f"conversation:{event.topic}", "new_activity", event.activity)
        elif event.kind == "d":
            hub.publish(f"conversation:{event.topic}", "delivery_status", event.data)
        elif event.kind == "m":
            hub.publish(f"conversation:{event.topic}", "attachment_status", event.data)
        elif event.kind == "h":
            hub.publish_health(event.data)
        elif event.kind == "i":
            drop = self.caches.get(event.topic)
            if drop is not None:
                drop()
            gone = isinstance(event.data, dict) and (
                event.data.get("deleted") or event.data.get("status", "active") != "active")
            if event.topic == "tenants" and event.ref and gone:
                # A disabled or deleted tenant: its sockets in this process close too.
                from .domain import tenants

                hub.publish(tenants.topic(event.ref), tenants.DISABLED,
                            {"tenant_id": event.ref, "feed": event.id})

    async def _fell_behind(self, missed: int) -> None:
        """Events this process never read were pruned (it was asleep or stopped)."""
        first = self._read(feed.first_id)
        if first is not None and first <= self.cursor + 1:
            return  # not pruned: ids are contiguous, so this page only raced a later one
        closed = self.ctx.hub.drop_all()
        for drop in self.caches.values():
            drop()
        log.warning("feed: this process fell %d events behind (asleep?); closed %d sockets so "
                    "their clients resume from the store", missed, closed)


class Pruner:
    """Deletes feed events older than ``RETENTION`` seconds (a singleton role)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.marks: deque[tuple[float, int]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feed-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], log, "feed pruner")
            self._task = None

    async def prune_once(self, now: float) -> int:
        """Record where the feed ends now; delete what ended ``RETENTION`` seconds ago."""
        db = self.ctx.db
        self.marks.append((now, await db.read(feed.last_id)))
        upto = 0
        while self.marks and self.marks[0][0] <= now - RETENTION:
            upto = self.marks.popleft()[1]
        if upto and self.ctx.settings.events_url:
            # The event relay's outbox: keep every event it has not yet published.
            row = await db.read(relay.position)
            upto = min(upto, row["last_id"]) if row is not None else 0
        if upto and self.ctx.settings.analytics_interval > 0:
            # The analytics rollup job counts activities from the feed: keep what it has not.
            upto = min(upto, await db.read(analytics.cursor))
        deleted = 0
        if upto:
            while (n := await db.write(feed.prune, upto)) > 0:
                deleted += n
        return deleted

    async def _run(self) -> None:
        while True:
            try:
                await self.prune_once(time.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("feed: prune failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY)
