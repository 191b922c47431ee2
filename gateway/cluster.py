"""One worker among the N processes of a gateway (``converger serve --workers N``).

``ctx.cluster`` is a :class:`Cluster` in a supervised worker and ``None`` in a one-process
gateway, where everything below is unnecessary and today's in-process paths run unchanged.

- **Wake-ups** (:class:`Notifier`): each worker binds a Unix datagram socket in the run
  directory the supervisor made. After a commit, a process sends one byte to each sibling
  (coalesced: at most one datagram per sibling every ``TELL_GAP`` seconds) — ``F`` the feed may have
  grown, ``Q`` deliveries are due, ``L`` a lease may be free. A datagram carries no data: the
  store is the truth, a wake-up only says "look now". An idle gateway sends nothing and polls
  nothing but a safety read every few seconds. An unknown byte (a corrupt notification) is
  logged and treated as "look at everything".
- **Singletons** (:class:`Keeper`): the scheduler, the alert sender and Litestream run in the
  process holding the ``leader`` lease (:mod:`store.leases`); it renews it every ``TICK``
  seconds. When it stops it gives the lease up and tells the others; when it dies the
  supervisor tells them, and a lease whose owner's pid is gone is taken at once (else after
  ``TTL``).
- **Heartbeats**: the same tick writes this worker's row in ``workers`` (pid, sockets) for
  ``/readyz``, and touches a file the supervisor watches to find a stuck event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from store import leases

from .tasks import cancel_and_wait, wait_event

log = logging.getLogger("converger.cluster")

TTL = 10.0  # seconds a lease lasts without renewal
TICK = 2.0  # seconds between renewals and heartbeats
STALE_AFTER = 3 * TICK + 2.0  # a worker not seen for this long is not ready
LEADER = "leader"
KINDS = b"FQAL"
# At most one wake-up datagram per sibling this often: under load a process commits hundreds
# of times a second, and a datagram per commit cost more CPU than the commits' own feed reads
# (docs/performance.md, §6). The first after a quiet spell goes at once.
TELL_GAP = 0.002

ENV_PARENT = "CONVERGER_SUPERVISOR_PID"

Start = Callable[[], Awaitable[Any]]


def heartbeat_path(run_dir: Path, slot: int) -> Path:
    """Touched by a worker's event loop every tick; the supervisor kills a worker whose file
    stops changing (a stuck loop)."""
    return run_dir / f"alive-{slot}"


def notify_path(run_dir: Path, slot: int) -> Path:
    """A worker's wake-up datagram socket."""
    return run_dir / f"wake-{slot}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Notifier:
    """Datagram wake-ups between the sibling workers of one supervisor."""

    def __init__(self, run_dir: Path, slot: int, size: int) -> None:
        self.run_dir, self.slot, self.size = run_dir, slot, size
        self.handlers: dict[int, Callable[[], None]] = {}
        self._pending = bytearray()
        self._scheduled = False
        self._last_flush = 0.0
        self._peers = [str(notify_path(run_dir, j)) for j in range(size) if j != slot]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recv: socket.socket | None = None
        self._send = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._send.setblocking(False)
        self.received = self.sent = self.corrupt = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        path = notify_path(self.run_dir, self.slot)
        path.unlink(missing_ok=True)
        self._recv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._recv.bind(str(path))
        self._recv.setblocking(False)
        loop.add_reader(self._recv.fileno(), self._readable)

    def close(self) -> None:
        if self._recv is not None and self._loop is not None:
            self._loop.remove_reader(self._recv.fileno())
            self._recv.close()
            self._recv = None
        self._send.close()

    def on(self, kind: bytes, handler: Callable[[], None]) -> None:
        self.handlers[kind[0]] = handler

    def _readable(self) -> None:
        assert self._recv is not None
        kinds: set[int] = set()
        while True:
            try:
                data = self._recv.recv(256)
            except BlockingIOError:
                break
            except OSError:
                log.exception("wake-up socket failed")
                break
            self.received += 1
            for b in data:
                if b in KINDS:
                    kinds.add(b)
                else:
                    self.corrupt += 1
                    if self.corrupt <= 5 or self.corrupt % 1000 == 0:
                        log.warning("corrupt wake-up datagram %r (%d so far); checking everything",
                                    bytes(data[:16]), self.corrupt)
                    kinds.update(KINDS)
                    break
        for b in kinds:
            handler = self.handlers.get(b)
            if handler is not None:
                try:
                    handler()
                except Exception:
                    log.exception("wake-up handler %r failed", chr(b))

    def tell(self, kind: bytes) -> None:
        """Wake the siblings (on the event loop; coalesced: at the loop's next turn, or
        ``TELL_GAP`` after the last datagram if that was sooner)."""
        if kind[0] not in self._pending:
            self._pending += kind
        loop = self._loop
        if self._scheduled or loop is None:
            return
        self._scheduled = True
        delay = self._last_flush + TELL_GAP - loop.time()
        if delay > 0:
            loop.call_later(delay, self._flush)
        else:
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        data, self._pending = bytes(self._pending), bytearray()
        if not data:
            return
        if self._loop is not None:
            self._last_flush = self._loop.time()
        for peer in self._peers:
            try:
                self._send.sendto(data, peer)
                self.sent += 1
            except (FileNotFoundError, ConnectionRefusedError, BlockingIOError):
                # Restarting (it catches up from the store), or its buffer is full (it is
                # awake already).
                pass
            except OSError as exc:
                log.warning("wake-up to %s failed: %s", peer, exc)


class Keeper:
    """Holds (or waits for) the ``leader`` lease and runs the singleton roles while it does."""

    def __init__(self, cluster: Cluster, ctx: Any) -> None:
        self.cluster, self.ctx = cluster, ctx
        self.roles: list[tuple[str, Start, Start]] = []
        self.leading = False
        self.closing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._switch = asyncio.Lock()
        self.workers: list[dict[str, Any]] = []  # the ``workers`` rows as of the last tick

    def add(self, name: str, start: Start, stop: Start) -> None:
        self.roles.append((name, start, stop))
        if self.leading:  # registered after this process became the leader
            asyncio.get_running_loop().create_task(self._start_role(name, start))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cluster-keeper")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop the roles, give the lease up, tell the siblings (before the database closes)."""
        self.closing = True
        if self._task is not None:
            await cancel_and_wait([self._task], log, "cluster keeper")
        if self.leading:
            await self._follow("stopping")
            try:
                await self.ctx.db.write(leases.release, LEADER, self.cluster.owner)
            except Exception:
                log.exception("could not give the leader lease up")
            self.cluster.notifier.tell(b"L")
            self.cluster.notifier._flush()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick(time.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the disk is full: try again next tick
                log.error("cluster tick failed: %s", exc)
            await wait_event(self._wake, TICK)
            self._wake.clear()

    async def tick(self, now: float) -> None:
        c = self.cluster
        try:
            os.utime(heartbeat_path(c.run_dir, c.slot))
        except FileNotFoundError:
            heartbeat_path(c.run_dir, c.slot).touch()
        if os.getppid() != c.parent:  # the supervisor is gone (PDEATHSIG covers Linux)
            log.error("the supervisor (pid %d) is gone; stopping", c.parent)
            os.kill(os.getpid(), 15)
        sockets = sum(self.ctx.socket_counts.values())
        held, self.workers = await self.ctx.db.write(self._tick_tx, now, sockets)
        if held and not self.leading and not self.closing:
            await self._lead()
        elif not held and self.leading:
            await self._follow("lost the leader lease")
        if self.leading:
            from . import metrics

            metrics.refresh_replication(self.ctx)

    def _tick_tx(self, conn: Any, now: float, sockets: int) -> tuple[bool, list[dict[str, Any]]]:
        c = self.cluster
        leases.beat(conn, c.slot, c.pid, c.owner, c.started, now, sockets, True)
        held = not self.closing and leases.take(conn, LEADER, c.owner, now, TTL, c.owner_dead)
        return held, leases.workers(conn)

    async def _lead(self) -> None:
        async with self._switch:
            self.leading = True
            log.info("worker %d (pid %d) is the leader: %s", self.cluster.slot, self.cluster.pid,
                     ", ".join(n for n, _, _ in self.roles))
            for name, start, _ in self.roles:
                await self._start_role(name, start)

    async def _start_role(self, name: str, start: Start) -> None:
        try:
            await start()
        except Exception:
            log.exception("role %s failed to start", name)

    async def _follow(self, why: str) -> None:
        async with self._switch:
            if not self.leading:
                return
            self.leading = False
            log.warning("worker %d (pid %d) stops its singleton roles: %s", self.cluster.slot,
                        self.cluster.pid, why)
            for name, _, stop in reversed(self.roles):
                try:
                    await stop()
                except Exception:
                    log.exception("role %s failed to stop", name)


class Cluster:
    """``ctx.cluster`` in a supervised worker."""

    def __init__(self, slot: int, size: int, run_dir: Path) -> None:
        self.slot, self.size, self.run_dir = slot, size, run_dir
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{self.pid}:{slot}"
        # Claim tokens of this slot start with this: a restarted worker gives back its
        # predecessor's leases at once (nobody else uses the slot's prefix).
        self.claim_prefix = f"w{slot}."
        self.started = time.time()
        self.parent = int(os.environ.get(ENV_PARENT, os.getppid()))
        self.notifier = Notifier(run_dir, slot, size)
        self.keeper: Keeper | None = None

    def owner_dead(self, owner: str) -> bool:
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        return host == self.host and pid.isdigit() and not pid_alive(int(pid))

    async def singleton(self, name: str, start: Start, stop: Start) -> None:
        """Run ``start`` while this process is the leader (``stop`` when it no longer is)."""
        assert self.keeper is not None
        self.keeper.add(name, start, stop)

    def workers_status(self, rows: list[dict[str, Any]], now: float) -> dict[str, Any]:
        """The ``workers`` check of ``/readyz``: every slot seen recently."""
        seen = {r["slot"]: r for r in rows if now - r["seen_at"] <= STALE_AFTER}
        listed = [{"slot": r["slot"], "pid": r["pid"], "sockets": r["sockets"],
                   "seen_ago": round(now - r["seen_at"], 1)} for r in rows if r["slot"] < self.size]
        return {"ok": all(i in seen for i in range(self.size)), "expected": self.size,
                "alive": sum(1 for i in range(self.size) if i in seen), "this": self.pid,
                "workers": listed}


async def singleton(app: Any, name: str, start: Start, stop: Start) -> None:
    """Start a singleton role: now in a one-process gateway; with workers, in the leader only
    (registered with the keeper, which starts and stops it as the lease comes and goes)."""
    cluster, node = app.ctx.cluster, app.ctx.node
    if cluster is not None:
        await cluster.singleton(name, start, stop)
    elif node is not None:  # several nodes on PostgreSQL: the leader lock's holder runs it
        node.singleton(name, start, stop)
    else:
        await start()


def install(app: Any, cluster: Cluster | None) -> None:
    """Wire the feed pruner (always) and, with several workers, the feed reader, the wake-ups,
    the keeper and the ``workers`` readiness check. Registered after the database opens."""
    from .feed import FeedReader, Pruner

    ctx = app.ctx
    ctx.cluster = cluster
    pruner = Pruner(ctx)
    if ctx.settings.worker_header:
        pid = str(os.getpid())

        @app.ctx.hooks.response(priority=5)
        def _worker_header(request: Any, response: Any) -> None:
            response.headers["x-converger-worker"] = pid

    if cluster is None and ctx.node is not None:
        _install_node(app, ctx.node, pruner)
        return
    if cluster is None:
        @app.after_server_start
        async def _start_pruner(app: Any) -> None:
            await pruner.start()

        @app.before_server_stop
        async def _stop_pruner(app: Any) -> None:
            await pruner.stop()

        return

    ctx.hub.shared = True
    reader = FeedReader(ctx)
    ctx.feed = reader
    keeper = cluster.keeper = Keeper(cluster, ctx)
    reader.caches["tenants"] = ctx.tenant_cache.clear

    async def workers_check() -> dict[str, Any]:
        rows = await ctx.db.read(leases.workers)
        status = cluster.workers_status(rows, time.time())
        held = await ctx.db.read(leases.holder, LEADER)
        status["leader"] = int(held[0].split(":")[1]) if held else None
        return status

    ctx.readiness["workers"] = workers_check

    @app.before_server_start
    async def _hook_commits(app: Any) -> None:
        ctx.db.on_commit = reader.committed

    @app.after_server_start
    async def _start_cluster(app: Any) -> None:
        notifier = cluster.notifier
        notifier.start(asyncio.get_running_loop())
        notifier.on(b"F", reader.wake)
        notifier.on(b"L", keeper.wake)
        notifier.on(b"Q", ctx.delivery.wake)
        alerts = ctx.alerts
        if alerts is not None:
            notifier.on(b"A", alerts.wake)
        await reader.start()
        await cluster.singleton("feed pruner", pruner.start, pruner.stop)
        keeper.start()
        log.info("worker %d of %d (pid %d) serving", cluster.slot, cluster.size, cluster.pid)

    @app.before_server_stop
    async def _stop_cluster(app: Any) -> None:
        await keeper.stop()
        await reader.stop()
        cluster.notifier.close()


def _install_node(app: Any, node: Any, pruner: Any) -> None:
    """One node of several on PostgreSQL (gateway/nodes.py): sockets hear only the feed (read
    back in commit order, woken by LISTEN/NOTIFY), singletons run where the leader lock is."""
    from .feed import FeedReader

    ctx = app.ctx
    ctx.hub.shared = True
    reader = FeedReader(ctx)
    ctx.feed = reader
    reader.caches["tenants"] = ctx.tenant_cache.clear
    node.singleton("feed pruner", pruner.start, pruner.stop)

    async def node_check() -> dict[str, Any]:
        return {"ok": True, "node": node.id, "leader": node.leader}

    ctx.readiness["node"] = node_check

    @app.before_server_start
    async def _hook_commits(app: Any) -> None:
        ctx.db.on_commit = reader.committed

    @app.after_server_start
    async def _start_node(app: Any) -> None:
        await reader.start()
        node.listen(asyncio.get_running_loop(), reader.wake)
        node.start()
        log.info("node %s on PostgreSQL serving", node.id)

    @app.before_server_stop
    async def _stop_node(app: Any) -> None:
        await node.stop()
        await reader.stop()
