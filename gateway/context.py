"""The ``Gateway``: everything a running converger holds, typed, in one object.

``create_app`` builds one and hands it to Sanic as ``app.ctx``; the domain operations
(``gateway/domain/``) take it as their first argument, so the same object serves a request
handler, a page, a worker, the CLI and a unit test. Nothing here imports Sanic: a test or the
CLI builds a ``Gateway`` without a server (``Gateway.offline``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from store.db import Database
from store.models import Activity, Tenant
from store.util import iso

from .clock import Clock
from .config import Settings
from .crypto import Cipher, secret_key
from .heap import Heap
from .hooks import Hooks
from .hub import Hub
from .sharedlimit import LocalCounts
from .tokens import Tokens

if TYPE_CHECKING:  # only for annotations: these import the gateway's outer layers
    from .cluster import Cluster
    from .connlimit import Limits
    from .domain import Actor
    from .feed import FeedReader
    from .nodes import Node
    from .ratelimit import DeliveryLimiter, Limiter
    from .replication import Supervisor
    from .tls_serve import Tls
    from .workers.scheduler import Scheduler

TENANT_CACHE_TTL = 2.0


class SocketCap(Protocol):
    def reserve(self, key: str, cap: int) -> bool: ...
    def add(self, key: str, delta: int) -> None: ...


class TenantCache:
    """API-key hash → tenant for a moment, so the hot path skips a read. Every tenant change
    made through the domain clears it (``gateway/domain/tenants.py``)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Tenant | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, Tenant | None]:
        item = self._items.get(key_hash)
        if item is None or item[0] < time.monotonic():
            return False, None
        return True, item[1]

    def put(self, key_hash: str, tenant: Tenant | None) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[key_hash] = (time.monotonic() + TENANT_CACHE_TTL, tenant)

    def clear(self) -> None:
        self._items.clear()


class DeliveryBackend(Protocol):
    """Where committed deliveries go. The queue backend wakes its workers; the inline backend
    (``CONVERGER_PIPELINE=inline``, development) makes the attempts before returning."""

    async def enqueued(self, activity: Activity | None, count: int) -> None:
        """``count`` deliveries were committed: of ``activity``, or (None) made due by hand."""
        ...

    def wake(self) -> None:
        """Work may be due that this process did not enqueue (another worker process did)."""
        ...

    def alive(self) -> dict[str, Any]:
        ...


class NoDelivery:
    """The backend of a gateway without workers (the CLI, unit tests): rows wait in the queue
    for a server to send them."""

    async def enqueued(self, activity: Activity | None, count: int) -> None:
        return None

    def wake(self) -> None:
        return None

    def alive(self) -> dict[str, Any]:
        return {"ok": True, "pipeline": "none"}


class Alerts(Protocol):
    def wake(self) -> None:
        ...


ActivityHook = Callable[[Activity], None]
RateLimit = Callable[..., Awaitable[None]]


async def _no_rate_limit(request: Any, scope: str, key: str | None = None) -> None:
    return None


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _now_iso() -> str:
    """``iso(utcnow())``, formatted by hand: the date and time of day once a second (this runs
    on every write request)."""
    global _second
    sec, us = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second  # one tuple, replaced whole: safe to read from any thread
    if cached[0] != sec:
        cached = _second = (sec, iso(datetime.fromtimestamp(sec, UTC))[:19])
    return f"{cached[1]}.{us:06d}Z"


@dataclass(eq=False)
class RequestState:
    """``request.ctx``: what the middleware and guards learn about one request, typed (the
    gateway's request class makes one per request, so no attribute is ever missing)."""

    request_id: str | None = None
    started: float | None = None
    rate_limit_headers: dict[str, str] | None = None
    span: Any = None  # the request's trace span, when tracing is on
    area: str | None = None  # the pages: "admin" or "portal"
    session: dict[str, Any] | None = None
    session_dirty: bool = False
    user: Any = None  # the signed-in admin or tenant user
    actor: Actor | None = None  # who acts, as the audit log names them (gateway.auth.actor)
    tenant: Any = None  # the portal user's tenant
    principal: Any = None  # what the signed-in person or admin token may do (domain.authz)
    claims: dict[str, Any] | None = None  # a socket's verified token
    vsn: str | None = None  # a socket's protocol version
    token: str | None = None  # a socket's token (Direct Line stream)
    dl: Any = None  # a Direct Line stream's (conversation id, watermark anchor)
    socket_key: str | None = None  # a digest of the token a socket counts against (per token)
    socket_reserved: bool = False  # its place under that cap is taken (gateway/realtime)
    tier_socket: str | None = None  # the tenant a socket counts against (tier max_connections)
    rule_channel: str | None = None  # a channel token's channel (routing rules it may read)


@dataclass(eq=False, slots=True)  # slots: a new piece of state needs a typed field
class Gateway:
    settings: Settings
    log: logging.Logger
    cipher: Cipher
    tokens: Tokens
    hub: Hub = field(default_factory=Hub)
    tenant_cache: TenantCache = field(default_factory=TenantCache)
    now_iso: Callable[[], str] = _now_iso
    delivery: DeliveryBackend = field(default_factory=NoDelivery)
    # Called with each newly committed activity, once (live broadcast, metrics).
    on_activity: list[ActivityHook] = field(default_factory=list)
    # Readiness checks: name → () → {"ok": bool, ...} (or an awaitable of it)
    readiness: dict[str, Callable[[], dict[str, Any] | Awaitable[dict[str, Any]]]] = field(
        default_factory=dict)
    # ``await rate_limit(request, scope, key=None)``: a no-op until gateway/ratelimit.py installs.
    rate_limit: RateLimit = _no_rate_limit
    rate_limiter: Limiter | None = None
    delivery_limiter: DeliveryLimiter | None = None
    replication: Supervisor | None = None
    scheduler: Scheduler | None = None
    # The inbound media downloader (gateway/workers/media.py): ``kick()`` after an inbound
    # activity with files to fetch was committed.
    media: Any = None
    alerts: Alerts | None = None
    cors_origins: Any = None
    static_cache: dict[str, Any] = field(default_factory=dict)
    # Awaited for a POST or HEAD before routing (gateway/forms.py, via gateway/connlimit.py).
    before_routing: Callable[[Any], Awaitable[None]] | None = None
    socket_counts: dict[str, int] = field(default_factory=dict)  # token → open sockets
    # Open sockets per token for CONVERGER_MAX_SOCKETS_PER_TOKEN, set by gateway/realtime:
    # with worker processes, every process's (gateway/sharedlimit.py ``SharedCounts``).
    socket_cap: SocketCap = field(default_factory=LocalCounts)
    tier_sockets: Any = None  # a tier's max_connections (gateway/tiersockets.py)
    # Connection caps and (header, body) deadlines, set by gateway/connlimit.py.
    conn_limits: Limits | None = None
    request_deadlines: tuple[float, float] = (0.0, 0.0)
    web: Any = None  # the pages' state (gateway/web), set when they are installed
    # One worker of several processes (gateway/cluster.py), and its reader of the change feed
    # (gateway/feed.py); None in a one-process gateway.
    cluster: Cluster | None = None
    feed: FeedReader | None = None
    # One node of several on PostgreSQL (gateway/nodes.py); None on SQLite.
    node: Node | None = None
    # HTTPS served here (CONVERGER_DOMAINS or CONVERGER_TLS_CERT): the certificate manager.
    tls: Tls | None = None
    # The app-wide request and response hooks, run by one Sanic middleware each (gateway/hooks.py).
    hooks: Hooks = field(default_factory=Hooks)
    # The garbage collector's schedule for long-lived objects (gateway/heap.py).
    heap: Heap = field(default_factory=lambda: Heap(0.0))
    _db: Database | None = None

    @property
    def db(self) -> Database:
        """The open database; only between ``attach`` and ``detach`` (server start and stop)."""
        if self._db is None:
            raise RuntimeError("the database is not open")
        return self._db

    @property
    def db_open(self) -> bool:
        return self._db is not None

    def attach(self, db: Database) -> None:
        self._db = db

    def detach(self) -> Database | None:
        db, self._db = self._db, None
        return db

    @classmethod
    def create(cls, settings: Settings, log: logging.Logger | None = None) -> Gateway:
        key = secret_key(settings)
        if not settings.clock_file:
            return cls(settings=settings, log=log or logging.getLogger("converger"),
                       cipher=Cipher(key), tokens=Tokens(key))
        clock = Clock(settings.clock_file)  # tests only: a clock they can move forward
        log = log or logging.getLogger("converger")
        log.warning("CONVERGER_CLOCK_FILE is set (%s): the clock runs %+g s from the system's; "
                    "for tests only", settings.clock_file, clock.offset())
        return cls(settings=settings, log=log,
                   cipher=Cipher(key), tokens=Tokens(key, clock.time), now_iso=clock.now_iso)
