"""Several ``converger serve`` nodes on one PostgreSQL database (``CONVERGER_DATABASE_URL``).

On PostgreSQL each node runs as one worker of a cluster does on SQLite (gateway/cluster.py), with
PostgreSQL's own mechanisms in place of what one machine shares:

- **The change feed** (gateway/feed.py): every node publishes to its sockets only what it reads
  back from the ``feed`` table, in ``id`` order. On PostgreSQL an id is handed out by the
  ``feed_counter`` row, locked until the inserting transaction commits (migration m0023), so ids
  are gap-free and in commit order across nodes, as SQLite's single writer makes them. A commit
  that added events also sends ``NOTIFY converger_feed`` (delivered at commit); each node
  ``LISTEN``\\ s on a connection of its own and wakes its reader. A notification can be lost (the
  listening connection dropped); a row cannot: after a reconnect the reader catches up from its
  cursor, and it looks every few seconds anyway.
- **Singletons** (the scheduler, the alert sender, the feed pruner): run by the node that holds
  the session advisory lock ``pg_try_advisory_lock(LEADER_LOCK)`` on a connection of its own.
  When that node dies its connection closes and PostgreSQL releases the lock; another node takes it
  at its next try (every ``TICK`` seconds). A node whose lock connection breaks stops its roles
  at once (another may hold the lock by then).
- **Delivery claims** are ``FOR UPDATE SKIP LOCKED`` (store.queue) with leases prefixed by this
  node's id (kept in its data directory): a node releases only its own leases when it stops or
  restarts; a dead node's run out and the others' rescuers send them again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from store.util import random_bytes

from .tasks import cancel_and_wait, wait_event

log = logging.getLogger("converger.nodes")

CHANNEL = "converger_feed"
LEADER_LOCK = 0x636F6E6C  # "conl"
TICK = 2.0

Start = Callable[[], Awaitable[Any]]


def node_id(data_dir: str | None) -> str:
    """This node's id, kept in ``<data_dir>/node_id``: a node restarted on its data directory
    is the same node (it takes back its killed predecessor's leases at once, as a worker slot
    does); each data directory, each node, its own."""
    fresh = "n" + random_bytes(6).hex()
    if data_dir is None:
        return fresh
    path = Path(data_dir) / "node_id"
    try:
        kept = path.read_text().strip()
        if kept:
            return kept
    except OSError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fresh + "\n")
    except OSError as exc:
        log.warning("node id not kept in %s (%s): leases of a killed run wait for their expiry",
                    path, exc)
    return fresh


class Node:
    """``ctx.node``: this process as one node of several on PostgreSQL."""

    def __init__(self, url: str, data_dir: str | None = None) -> None:
        self.url = url
        self.id = node_id(data_dir)  # claim-token prefix, unique among the nodes
        self.leader = False
        self._roles: dict[str, tuple[Start, Start]] = {}
        self._running: list[str] = []
        self._lock_conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None

    # -- the feed's wake-ups ---------------------------------------------------------------
    def listen(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        """Call ``wake`` (on ``loop``) for each ``NOTIFY converger_feed``, and once after each
        (re)connection of the listening connection (what came meanwhile is read from the table)."""
        self._loop, self._wake = loop, wake
        self._listener = threading.Thread(target=self._listen, name="pg-listen", daemon=True)
        self._listener.start()

    def _poke(self) -> None:
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed during shutdown
                pass

    def _listen(self) -> None:
        import psycopg

        backoff = 0.2
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                     application_name="converger listen") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.2
                    self._poke()  # catch up with whatever was committed while not listening
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=64):
                            self._poke()
            except Exception as exc:  # noqa: BLE001 - PostgreSQL away: retry, the table keeps all
                if self._stopping.is_set():
                    return
                log.warning("feed listener: %s; reconnecting", " ".join(str(exc).split()))
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    # -- singletons --------------------------------------------------------------------------
    def singleton(self, name: str, start: Start, stop: Start) -> None:
        self._roles[name] = (start, stop)
        if self._kick is not None:
            self._kick.set()  # the leader starts it now, not at the next tick

    def start(self) -> None:
        self._kick = asyncio.Event()
        self._task = asyncio.create_task(self._keep(), name="pg-leader")

    async def _keep(self) -> None:
        while True:
            try:
                held = await asyncio.to_thread(self._hold)
            except Exception as exc:  # noqa: BLE001 - the lock connection broke
                log.warning("leader lock: %s", " ".join(str(exc).split()))
                held = False
            if held:
                if not self.leader:
                    self.leader = True
                    log.info("node %s holds the leader lock", self.id)
                for name, (start, _) in list(self._roles.items()):  # also roles added since
                    if name not in self._running:
                        self._running.append(name)
                        try:
                            await start()
                        except Exception:
                            log.exception("singleton %s failed to start", name)
            elif self.leader:
                await self._stop_roles()
            assert self._kick is not None
            await wait_event(self._kick, TICK)
            self._kick.clear()

    def _hold(self) -> bool:
        """Whether this node holds the leader lock now (taking it when it is free)."""
        import psycopg

        conn = self._lock_conn
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            conn = self._lock_conn = None
        if conn is None:
            if self.leader:  # the connection that held it is gone: so is the lock
                return False
            conn = self._lock_conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                                     application_name="converger leader")
        if self.leader:
            conn.execute("SELECT 1")  # still connected: still held
            return True
        (got,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
        return bool(got)

    async def _stop_roles(self) -> None:
        self.leader = False
        for name in reversed(self._running):
            try:
                await self._roles[name][1]()
            except Exception:
                log.exception("singleton %s failed to stop", name)
        self._running.clear()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await cancel_and_wait([self._task], log, "leader lock")
            self._task = None
        if self.leader:
            await self._stop_roles()
        if self._lock_conn is not None:
            await asyncio.to_thread(self._lock_conn.close)  # releases the lock for the others
            self._lock_conn = None
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join, 5)
            self._listener = None
