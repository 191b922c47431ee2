"""Prometheus metrics (prometheus-client) and the JSON request log.

The process has one registry (``REGISTRY``). Other areas report through four functions:

- ``activity_created()`` — installed as an ``on_activity`` hook, nothing to call by hand;
- ``delivery_finished(channel_type, outcome, seconds)`` — a delivery worker, after each attempt
  (outcome: ``sent``, ``retry``, ``failed``, …);
- ``ws_connected(+1)`` / ``ws_connected(-1)`` — a socket opened / closed;
- ``rate_limited(scope)`` — called by the rate limiter.

Queue depth and the oldest due delivery's age are computed at scrape time from the
``deliveries`` table; replication state comes from ``ctx.replication`` when it runs.
``/metrics`` answers the admin allowlist only (``ADMIN_IP_WHITELIST``); with
``PROMETHEUS_PORT`` set it is also served on that port.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

from . import legacy_metrics
from .ipallow import admin_allowed

REGISTRY = CollectorRegistry(auto_describe=True)
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DELIVERY_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter("converger_http_requests", "HTTP requests answered.",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("converger_http_request_duration_seconds", "HTTP request latency.",
                         ["method", "route"], buckets=_LATENCY, registry=REGISTRY)
ACTIVITIES = Counter("converger_activities_created", "Activities created (committed).",
                     registry=REGISTRY)
DELIVERIES = Counter("converger_deliveries", "Delivery attempts finished, by outcome.",
                     ["channel_type", "outcome"], registry=REGISTRY)
DELIVERY_LATENCY = Histogram("converger_delivery_duration_seconds", "Delivery attempt latency.",
                             ["channel_type"], buckets=_DELIVERY_LATENCY, registry=REGISTRY)
# With several worker processes (prometheus-client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR
# set by the supervisor) a scrape of any process reports the whole gateway: counters and
# histograms add up; the sockets gauge is the sum over live processes; the gauges computed at
# scrape time from the shared database (or set by the leader) report the latest value.
_LATEST: Literal["livemostrecent"] = "livemostrecent"
WS_CONNECTIONS = Gauge("converger_websocket_connections", "Open WebSocket connections.",
                       registry=REGISTRY, multiprocess_mode="livesum")
WS_CONNECTS = Counter("converger_websocket_connects", "WebSocket connections opened.",
                      registry=REGISTRY)
RATE_LIMITED = Counter("converger_rate_limited", "Requests refused with 429.", ["scope"],
                       registry=REGISTRY)
QUEUE_DEPTH = Gauge("converger_queue_depth", "Deliveries waiting, by state.", ["state"],
                    registry=REGISTRY, multiprocess_mode=_LATEST)
QUEUE_OLDEST_DUE = Gauge("converger_queue_oldest_due_age_seconds",
                         "How long the oldest due, unclaimed delivery has been due.",
                         registry=REGISTRY, multiprocess_mode=_LATEST)
REPLICATION_UP = Gauge("converger_replication_up", "1 while Litestream runs; 0 when it is down "
                       "or replication is not configured.", registry=REGISTRY,
                       multiprocess_mode=_LATEST)
REPLICATION_LAG = Gauge("converger_replication_lag_seconds",
                        "Seconds since Litestream last confirmed the replica current.",
                        registry=REGISTRY, multiprocess_mode=_LATEST)
REPLICATION_RESTARTS = Gauge("converger_replication_restarts",
                             "Times the Litestream child was restarted.", registry=REGISTRY,
                             multiprocess_mode=_LATEST)
WAL_BYTES = Gauge("converger_wal_bytes", "Size of the SQLite WAL file.", registry=REGISTRY,
                  multiprocess_mode=_LATEST)
# The original's last-value names set per request (the rest: gateway/legacy_metrics.py).
LEGACY = legacy_metrics.gauges(REGISTRY)
_PROBE_MS: dict[str, float] = {}


# -- the API other areas call ------------------------------------------------------------
def activity_created(_activity: Any = None) -> None:
    ACTIVITIES.inc()


def delivery_finished(channel_type: str, outcome: str, seconds: float) -> None:
    """Record one finished delivery attempt (``outcome``: sent, retry, failed, …)."""
    DELIVERIES.labels(channel_type, outcome).inc()
    DELIVERY_LATENCY.labels(channel_type).observe(seconds)


def ws_connected(delta: int) -> None:
    """+1 when a WebSocket opens, -1 when it closes."""
    WS_CONNECTIONS.inc(delta)
    if delta > 0:
        WS_CONNECTS.inc(delta)


def rate_limited(scope: str) -> None:
    RATE_LIMITED.labels(scope).inc()


# -- scrape-time values -----------------------------------------------------------------
def queue_stats(conn: sqlite3.Connection, now: str) -> dict[str, Any]:
    """Pending (due and scheduled), leased, and the oldest due time. Uses the partial indexes."""
    pending, oldest = conn.execute(
        "SELECT count(*), min(next_attempt_at) FROM deliveries "
        "WHERE status = 'pending' AND claim_token IS NULL"
    ).fetchone()
    due = conn.execute(
        "SELECT count(*) FROM deliveries WHERE status = 'pending' AND claim_token IS NULL "
        "AND next_attempt_at <= ?", (now,)
    ).fetchone()[0]
    leased = conn.execute(
        "SELECT count(*) FROM deliveries WHERE claim_token IS NOT NULL"
    ).fetchone()[0]
    return {"due": due, "scheduled": pending - due, "leased": leased, "oldest": oldest}


def _age(iso_ts: str | None) -> float:
    if not iso_ts:
        return 0.0
    then = datetime.fromisoformat(iso_ts.replace("Z", "+00:00"))
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


async def refresh(app: Sanic) -> None:
    """Set the gauges that are computed when scraped."""
    ctx = app.ctx
    if ctx.db_open:
        marks: list[float] = []

        def timed(conn: sqlite3.Connection, now: str) -> dict[str, Any]:
            marks.append(time.perf_counter())
            try:
                return queue_stats(conn, now)
            finally:
                marks.append(time.perf_counter())

        submitted = time.perf_counter()
        stats = await ctx.db.read(timed, ctx.now_iso())
        # The original's repo query timings (last value): this scrape's own query.
        _PROBE_MS.update(queue=(marks[0] - submitted) * 1000, query=(marks[1] - marks[0]) * 1000)
        for state in ("due", "scheduled", "leased"):
            QUEUE_DEPTH.labels(state).set(stats[state])
        QUEUE_OLDEST_DUE.set(_age(stats["oldest"]) if stats["due"] else 0.0)
        try:
            WAL_BYTES.set(ctx.db.path.with_name(ctx.db.path.name + "-wal").stat().st_size)
        except OSError:
            WAL_BYTES.set(0)
    refresh_replication(ctx)


def refresh_replication(ctx: Any) -> None:
    """The Litestream gauges, from the process that runs it (with several workers the leader
    calls this on each of its ticks, so any process's scrape reports it)."""
    supervisor = ctx.replication
    if supervisor is not None:
        state = supervisor.status()
        REPLICATION_UP.set(1 if state["ok"] else 0)
        REPLICATION_LAG.set(state.get("lag_seconds") or 0.0)
        REPLICATION_RESTARTS.set(state.get("restarts", 0))


def _registry() -> CollectorRegistry:
    """This process's registry; with worker processes, one that reads every process's files."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


class _Families:
    """Collected families as a registry for ``generate_latest``."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


# Writes of the original's "last value" gauges waiting for their flush (see ``_observe``).
_FLUSHERS: list[Any] = []
LAST_VALUE_FLUSH = 0.5  # seconds


async def exposition(app: Sanic) -> tuple[bytes, str]:
    """converger's families, then the original's names in the original's form."""
    for flush in _FLUSHERS:
        flush()
    await refresh(app)
    families = list(_registry().collect())
    own = [f for f in families if f.name not in legacy_metrics.NAMES]
    body = generate_latest(_Families(own))
    return body + legacy_metrics.text(families, _PROBE_MS).encode(), CONTENT_TYPE_LATEST


# -- installation ----------------------------------------------------------------------------
def route_label(request: Request) -> str:
    """The matched route's template (Sanic's, e.g. ``/api/v1/conversations/<conversation_id:str>``),
    for metric labels and span names: one per route, not per path."""
    route = request.route
    if route is None:
        return "unmatched"  # 404s must not create one series per probed path
    return "/" + route.path.lstrip("/")


def install(app: Sanic) -> None:
    ctx = app.ctx
    ctx.on_activity.append(activity_created)
    log = ctx.log
    children: dict[tuple[str, str | None, int], tuple[Any, ...]] = {}
    endpoint_start = LEGACY["phoenix_endpoint_start_system_time"]
    endpoint_stop = LEGACY["phoenix_endpoint_stop_duration"]
    # The original's gauges hold the last request's values. Setting four of them per request
    # cost ~4 us with several processes (each set is a locked write to a shared file), so a
    # request only notes its values and they are written at most every LAST_VALUE_FLUSH
    # seconds, and before a scrape in this process.
    last: dict[tuple[str, str | None, int], tuple[tuple[Any, ...], float, float]] = {}
    latest: list[float] = []
    flush_due: list[bool] = [False]

    def flush() -> None:
        flush_due[0] = False
        for pair, started_ms, ms in last.values():
            pair[2].set(started_ms)
            pair[3].set(ms)
        last.clear()
        if latest:
            endpoint_start.set(latest[0])
            endpoint_stop.set(latest[1])
            latest.clear()

    _FLUSHERS.append(flush)

    @app.get("/metrics", name="metrics")
    async def metrics_route(request: Request) -> HTTPResponse:
        if not admin_allowed(request):
            return text("Forbidden", status=403)
        body, ctype = await exposition(request.app)
        return HTTPResponse(body, content_type=ctype)

    @app.ctx.hooks.response(priority=10)
    def _observe(request: Request, response: HTTPResponse) -> None:
        started = request.ctx.started
        if started is None:
            return
        seconds = time.perf_counter() - started
        key = (request.method, request.route.path if request.route else None, response.status)
        pair = children.get(key)
        if pair is None:
            # prometheus_client's labels() validates and locks on every call: the children
            # are looked up once per (method, route, status), a bounded set.
            route = route_label(request)
            pair = children[key] = (
                HTTP_REQUESTS.labels(request.method, route, str(response.status)),
                HTTP_LATENCY.labels(request.method, route),
                LEGACY["phoenix_router_dispatch_start_system_time"].labels(route),
                LEGACY["phoenix_router_dispatch_exception_duration" if response.status >= 500
                       else "phoenix_router_dispatch_stop_duration"].labels(route))
        pair[0].inc()
        pair[1].observe(seconds)
        # The original's last values: start as system time, durations in ms.
        ms, started_ms = seconds * 1000, legacy_metrics.now_ms() - seconds * 1000
        last[key] = (pair, started_ms, ms)
        latest[:] = (started_ms, ms)
        if not flush_due[0]:
            flush_due[0] = True
            asyncio.get_running_loop().call_later(LAST_VALUE_FLUSH, flush)
        if ctx.settings.access_log:
            # Only the path: query strings can carry tokens (?token=… on sockets).
            log.info("request", extra={
                "request_id": request.ctx.request_id,
                "method": request.method, "path": request.path, "status": response.status,
                "duration_ms": round(seconds * 1000, 3)})

    if ctx.settings.prometheus_port:
        _serve_port(app, ctx.settings.host, ctx.settings.prometheus_port)


def _serve_port(app: Sanic, host: str, port: int) -> None:
    """``/metrics`` on its own port (the original's PROMETHEUS_PORT), with aiohttp's server."""
    from aiohttp import web

    runner_box: dict[str, web.AppRunner] = {}

    async def handle(_request: web.Request) -> web.Response:
        body, ctype = await exposition(app)
        return web.Response(body=body, headers={"content-type": ctype})

    @app.after_server_start
    async def _start(app: Sanic) -> None:
        web_app = web.Application()
        web_app.router.add_get("/metrics", handle)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        # With several worker processes each serves the port (SO_REUSEPORT): any of them
        # answers for the whole gateway (multiprocess mode).
        await web.TCPSite(runner, host, port, reuse_port=app.ctx.cluster is not None).start()
        runner_box["runner"] = runner
        app.ctx.log.info("metrics on http://%s:%s/metrics", host, port)

    @app.before_server_stop
    async def _stop(app: Sanic) -> None:
        runner = runner_box.pop("runner", None)
        if runner is not None:
            await runner.cleanup()
