"""Rate limits: per IP on the token endpoints, per tenant on activity creation, per channel on
outbound deliveries.

The algorithm is GCRA (the generic cell rate algorithm, a sliding-window equivalent of a token
bucket): each key keeps one number, its "theoretical arrival time", so memory is O(keys) and a
burst of ``limit`` is allowed, then one request every ``window / limit``. Unlike the original's
fixed window (docs/operations.md) there is no double burst at a window edge, and denied requests do
not count, so a client that backs off for ``Retry-After`` seconds always gets through.
The clock is injectable (``clock=``) so tests never sleep.

A 429 carries ``Retry-After`` plus the IETF draft headers ``RateLimit-Policy`` and
``RateLimit`` (draft-ietf-httpapi-ratelimit-headers, structured-field form); allowed requests
in a limited scope carry the two ``RateLimit*`` headers too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from . import errors, metrics, tierlimits
from .ipallow import client_ip

TOO_MANY = "Too many requests. Please try again later."
#: scope → (setting name, window seconds, keyed by)
SCOPES: dict[str, tuple[str, float, str]] = {
    "token_create": ("rate_limit_tokens", 60.0, "ip"),
    "cg_token": ("rate_limit_tokens", 60.0, "ip"),
    "activity_create": ("rate_limit_activities", 60.0, "tenant"),
    "conversation_create": ("rate_limit_conversations", 60.0, "tenant"),
    "inbound": ("rate_limit_inbound", 60.0, "channel"),
}
_SWEEP_EVERY = 600.0


class Decision:
    """The outcome of one hit: allowed or not, what is left, and when to come back."""

    __slots__ = ("allowed", "limit", "remaining", "reset", "retry_after", "window")

    def __init__(self, allowed: bool, limit: int, remaining: int, reset: float,
                 retry_after: float, window: float) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset = reset  # seconds until the full quota is back
        self.retry_after = retry_after  # seconds until one more request is allowed
        self.window = window


class Limiter:
    """GCRA limiter over string keys, with an injectable monotonic clock. With ``table`` (a
    :class:`gateway.sharedlimit.SharedTable`) the state is shared by the worker processes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, table: Any = None) -> None:
        self.clock = clock
        self.table = table
        self._tat: dict[str, float] = {}
        self._swept = clock()

    def hit(self, key: str, limit: int, window: float) -> Decision:
        """Count one request for ``key`` against ``limit`` per ``window`` seconds."""
        if self.table is not None:
            return self.table.update(key, lambda tat, now: _gcra(tat, now, limit, window))
        now = self.clock()
        self._maybe_sweep(now)
        decision, new_tat = _gcra(self._tat.get(key), now, limit, window)
        if new_tat is not None:
            self._tat[key] = new_tat
        return decision

    def _maybe_sweep(self, now: float) -> None:
        # Keys whose arrival time has passed carry no state worth keeping.
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        for key in [k for k, t in self._tat.items() if t <= now]:
            del self._tat[key]

    def __len__(self) -> int:
        return len(self._tat)


def _gcra(tat: float | None, now: float, limit: int, window: float) -> tuple[Decision, float | None]:
    """One GCRA step: the decision, and the key's new arrival time (None: unchanged)."""
    interval = window / limit
    tat = max(tat if tat is not None else now, now)
    # Allowed when the new arrival time stays within one window of now.
    new_tat = tat + interval
    allow_at = new_tat - window
    if allow_at > now:
        return Decision(False, limit, 0, tat - now, allow_at - now, window), None
    remaining = int((window - (new_tat - now)) / interval + 1e-9)
    return Decision(True, limit, max(remaining, 0), new_tat - now, 0.0, window), new_tat


class DeliveryLimiter:
    """Per-channel pacing of outbound deliveries: ``acquire(channel_id)`` reserves the next slot
    and returns how many seconds the caller should wait before sending (0.0 = send now).
    Deliveries wait rather than fail. ``per_second <= 0`` means no limit."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 table: Any = None) -> None:
        self.per_second = per_second
        self.clock = clock
        self.table = table  # shared by the worker processes (gateway/sharedlimit.py)
        self._next: dict[str, float] = {}

    def acquire(self, channel_id: str, per_second: float | None = None) -> float:
        """``per_second`` (the channel's tenant's SLA tier) overrides the gateway-wide rate."""
        rate = self.per_second if per_second is None else per_second
        if rate <= 0:
            return 0.0
        if self.table is not None:
            return self.table.update(f"delivery:{channel_id}",
                                     lambda tat, now: self._step(tat, now, rate))
        now = self.clock()
        interval = 1.0 / rate
        # GCRA again: a burst of one second's worth, then sends evenly spaced.
        tat = max(self._next.get(channel_id, now), now) + interval
        self._next[channel_id] = tat
        if len(self._next) > 10_000:  # forget idle channels
            for key in [k for k, t in self._next.items() if t < now]:
                del self._next[key]
        delay = tat - 1.0 - now
        return delay if delay > 1e-9 else 0.0

    def _step(self, tat: float | None, now: float, rate: float) -> tuple[float, float]:
        new_tat = max(tat if tat is not None else now, now) + 1.0 / rate
        delay = new_tat - 1.0 - now
        return (delay if delay > 1e-9 else 0.0), new_tat


class NodesLimiter:
    """GCRA state of every node on PostgreSQL (store/ratelimits.py): one ``UPSERT … RETURNING``
    per hit on a connection of its own, off the event loop, so that a tenant's limit holds for
    the whole gateway, not per node. If PostgreSQL cannot be asked, the hit is counted by this
    node's own limiter meanwhile (a limit is never a reason to refuse traffic on its own)."""

    def __init__(self, url: str, local: Limiter) -> None:
        import threading

        self.url = url
        self.local = local
        self._conn: Any = None
        self._lock = threading.Lock()
        self._warned = 0.0
        self._swept = time.monotonic()

    def _hit(self, key: str, limit: int, window: float) -> tuple[float | None, float, float]:
        import psycopg

        from store import ratelimits

        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3,
                                             application_name="converger limits")
                ratelimits.create(self._conn)
            if time.monotonic() - self._swept > _SWEEP_EVERY:  # keys whose time has passed
                self._swept = time.monotonic()
                ratelimits.sweep(self._conn)
            return ratelimits.hit(self._conn, key, limit, window)

    async def hit(self, key: str, limit: int, window: float) -> Decision:
        import asyncio

        try:
            new, before, now = await asyncio.to_thread(self._hit, key, limit, window)
        except Exception as exc:  # noqa: BLE001 - PostgreSQL away: this node's count meanwhile
            if time.monotonic() - self._warned > 30:
                self._warned = time.monotonic()
                import logging

                logging.getLogger("converger.ratelimit").warning(
                    "rate limits counted per node while PostgreSQL cannot be asked: %s",
                    " ".join(str(exc).split()))
            return self.local.hit(key, limit, window)
        interval = window / limit
        if new is None:
            allow_at = before + interval - window
            return Decision(False, limit, 0, before - now, max(allow_at - now, 0.0), window)
        remaining = int((window - (new - now)) / interval + 1e-9)
        return Decision(True, limit, max(remaining, 0), new - now, 0.0, window)


def policy_headers(scope: str, d: Decision) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` in the draft's structured-field form."""
    return {
        "RateLimit-Policy": f'"{scope}";q={d.limit};w={int(d.window)}',
        "RateLimit": f'"{scope}";r={d.remaining};t={max(0, math.ceil(d.reset))}',
    }


def too_many(scope: str, d: Decision, tier: str | None = None) -> errors.ApiError:
    """429 ``rate_limited``; over an SLA tier's limit, the body names the tier (``tier``)."""
    headers = policy_headers(scope, d)
    headers["Retry-After"] = str(max(1, math.ceil(d.retry_after)))
    detail, extra = TOO_MANY, {}
    if tier is not None:
        detail = f"Too many requests: the {tier} tier allows {d.limit} per minute."
        extra = {"tier": tier}
    return errors.ApiError(429, "rate_limited", detail, legacy={"error": TOO_MANY},
                           headers=headers, extra=extra)


def install(app: Sanic) -> None:
    """Replace the no-op ``ctx.rate_limit`` and add ``ctx.delivery_limiter``."""
    ctx = app.ctx
    table = None
    if ctx.cluster is not None:  # several worker processes: one state for the whole gateway
        from .sharedlimit import SharedTable

        table = SharedTable(ctx.cluster.run_dir / "ratelimit")
    limiter = Limiter(table=table)
    ctx.rate_limiter = limiter
    # Several nodes on PostgreSQL: the limits are counted there, for the whole gateway.
    nodes = (NodesLimiter(ctx.settings.database_url, limiter)
             if ctx.node is not None and table is None else None)
    # Every scope's 429 counter exists from the start (at 0): with worker processes, a series
    # no process has touched is not in /metrics at all (prometheus-client's multiprocess mode).
    for scope in SCOPES:
        metrics.RATE_LIMITED.labels(scope)
    ctx.delivery_limiter = DeliveryLimiter(ctx.settings.rate_limit_deliveries, table=table)

    s = ctx.settings
    limits = {"rate_limit_tokens": s.rate_limit_tokens, "rate_limit_activities": s.rate_limit_activities,
              "rate_limit_inbound": s.rate_limit_inbound,
              "rate_limit_conversations": s.rate_limit_conversations}

    async def rate_limit(request: Request | None, scope: str, key: str | None = None) -> None:
        """Count this request in ``scope``; raise a 429 ApiError when over the limit.
        ``key`` defaults to the client IP for IP scopes and must be given (tenant id) otherwise.
        ``request`` is None for a socket's message (no HTTP answer to carry the headers)."""
        setting, window, keyed = SCOPES.get(scope, ("rate_limit_tokens", 60.0, "ip"))
        limit = int(limits[setting])
        tier_name = None
        if scope == "activity_create" and key is not None:  # the tenant's SLA tier's limit
            hit, tier = tierlimits.CACHE.fresh(key)
            if not hit:
                tier = await tierlimits.of(ctx, key)
            if tier is not None and tier.activities_per_min is not None:
                limit, tier_name = tier.activities_per_min, tier.name
                if limit <= 0:  # the tier allows none
                    metrics.rate_limited(scope)
                    raise too_many(scope, Decision(False, 0, 0, window, window, window),
                                   tier_name)
        if limit <= 0:
            return
        if key is None:
            assert request is not None, "an IP scope counts a request"
            key = client_ip(request, ctx.settings.trusted_proxies) if keyed == "ip" else "anonymous"
        # token_create and cg_token share nothing: the bucket is named by scope.
        name = f"{scope}:{keyed}:{key}"
        decision = (await nodes.hit(name, limit, window) if nodes is not None
                    else limiter.hit(name, limit, window))
        if not decision.allowed:
            metrics.rate_limited(scope)
            raise too_many(scope, decision, tier_name)
        if request is not None:
            request.ctx.rate_limit_headers = policy_headers(scope, decision)

    ctx.rate_limit = rate_limit

    @app.ctx.hooks.response(priority=50)
    def _headers(request: Request, response: HTTPResponse) -> None:
        extra: dict[str, str] | None = request.ctx.rate_limit_headers
        if extra and response.status < 400:
            for name, value in extra.items():
                response.headers.setdefault(name, value)
