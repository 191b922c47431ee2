"""``create_app(settings)``: the Sanic app, its context, and its lifecycle."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from store import migrations
from store.db import Database
from store.util import random_bytes

from . import errors, logs
from .cluster import Cluster
from .config import Settings
from .context import Gateway, RequestState

_NAMES = iter(range(1_000_000))


def private_files(settings: Settings) -> None:
    """The data directory 0700 and the files in it that hold data or keys 0600 — also those
    made by an older version (world-readable then). Files the process does not own are left."""
    data = Path(settings.data_dir)
    db = settings.db_path
    paths = [(data, 0o700), (data / "secret_key", 0o600), (data / "uploads", 0o700)]
    paths += [(Path(f"{db}{suffix}"), 0o600) for suffix in ("", "-wal", "-shm")]
    for path, mode in paths:
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(mode)


class GatewayRequest(Request):
    """A request whose ``ctx`` is a typed ``RequestState`` instead of an empty namespace."""

    @staticmethod
    def make_context() -> RequestState:  # type: ignore[override]
        return RequestState()


EXIT_NO_DATABASE = 3  # a worker's exit status when it cannot open the database


def _no_error_format_guessing() -> None:
    """Sanic guesses each route's error-page format ("auto") by reading its handler's source
    and parsing it (inspect.getsource + ast): ~0.15 s of CPU at every process start for our
    ~200 routes (measured on the test servers: 1.13 → 0.98 s per start). The format is only
    used by Sanic's last-resort error page, and every exception is answered by
    gateway.errors' handlers (problem+json); so routes take FALLBACK_ERROR_FORMAT ("json"),
    as they already do in the single binary, where no source can be read and the guess is
    empty too. Before the routes are declared (their modules are imported by _register_routes)."""
    from sanic.mixins.routes import RouteMixin

    if hasattr(RouteMixin, "_determine_error_format"):
        RouteMixin._determine_error_format = lambda self, handler: ""  # type: ignore[method-assign]


def open_database(settings: Settings) -> tuple[Database, list[str]]:
    """Open the database, apply pending migrations, start the writer.

    A database from a newer version is refused before anything opens it for writing
    (``store.upgrade.SchemaTooNew``, nothing changed); an older one is snapshotted beside itself
    before it is migrated (``store.migrations.apply``)."""
    from store import upgrade

    private_files(settings)
    if settings.postgresql:
        from store.pg import PgDatabase

        pgdb = PgDatabase(settings.database_url)
        return pgdb, pgdb.start(prepare=migrations.apply)
    upgrade.refuse_newer(upgrade.inspect_file(settings.db_path, migrations.MIGRATION_SET),
                         migrations.known(), f"the database {settings.db_path}")
    # While Litestream replicates, it owns checkpoints (gateway/replication.py).
    db = Database(settings.db_path, synchronous=settings.synchronous,
                  checkpoints=not settings.replica_url, max_pages=settings.db_max_pages)
    applied = db.start(prepare=migrations.apply)
    return db, applied


def create_app(settings: Settings, name: str | None = None, cluster: Cluster | None = None) -> Sanic:
    """The app; ``cluster`` makes it one worker of several (``converger serve --workers N``)."""
    # app.ctx is the typed Gateway (gateway/context.py): the domain operations take it as `gw`.
    gw = Gateway.create(settings, logs.configure(settings.log_level))
    gw.cluster = cluster  # None: one process (see gateway/cluster.py)
    if settings.postgresql and cluster is None:
        from .nodes import Node

        gw.node = Node(settings.database_url, settings.data_dir)  # one node of any number (gateway/nodes.py)
    app = Sanic(name or f"converger{next(_NAMES)}", configure_logging=False, ctx=gw,
                request_class=GatewayRequest)
    app.config.REQUEST_MAX_SIZE = max(settings.max_upload_bytes, settings.max_body_bytes) + 65_536
    # TouchUp strips Sanic's unused per-request signal dispatch (~30% of the event loop's time
    # on the activity write path) but reads source files, which a frozen binary lacks.
    app.config.TOUCHUP = not getattr(sys, "frozen", False)
    app.config.MOTD = False
    app.config.ACCESS_LOG = settings.access_log
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 8.0
    app.config.FALLBACK_ERROR_FORMAT = "json"
    _no_error_format_guessing()

    from . import connlimit

    connlimit.install(app)  # used by gateway.server's protocol (connection caps, deadlines)
    from . import forms

    forms.install(app)  # HEAD on GET routes, _method overrides (form bodies: gateway/http.py)
    errors.register(app)
    _register_routes(app)
    _register_middleware(app)
    from . import hooks

    hooks.install(app)  # the app's request and response hooks: one Sanic middleware each
    from . import lifecycle

    lifecycle.watch_shutdown(app)  # last: its before_server_stop runs first

    @app.before_server_start
    async def _open(app: Sanic) -> None:
        try:
            db, applied = open_database(settings)
        except Exception as exc:
            if cluster is None:
                raise
            # One line, then exit: the supervisor restarts this worker (with a growing delay
            # while it keeps failing) and the other workers keep serving.
            # Nothing has started yet (no database, no tasks): exit at once, rather than
            # through Sanic, which would log a traceback for it.
            gw.log.error("worker %d (pid %d) cannot open the database %s: %s; exiting",
                         cluster.slot, cluster.pid, settings.db_path, exc)
            logging.shutdown()  # flush the line
            os._exit(EXIT_NO_DATABASE)
        if applied:
            gw.log.info("applied migrations: %s", ", ".join(applied))
        gw.attach(db)

    from . import cluster as cluster_mod

    cluster_mod.install(app, cluster)  # after the database opens: its hooks need it
    from .heap import Heap

    gw.heap = Heap(settings.gc_full_every)

    @app.after_server_start
    async def _settle_heap(app: Sanic) -> None:  # last: freeze what start-up made
        # Once the server serves, not inside this hook: Sanic's SIGTERM handler stops the loop,
        # which during the after_server_start hooks ends only that step and the worker serves
        # on (a stop lost); the first collection here would widen that window.
        import asyncio
        from contextvars import Context

        asyncio.get_running_loop().call_soon(gw.heap.start, context=Context())

    @app.before_server_stop
    async def _unsettle_heap(app: Sanic) -> None:
        gw.heap.stop()

    @app.after_server_stop
    async def _close(app: Sanic) -> None:
        db = gw.detach()
        if db is not None:
            started = time.monotonic()
            db.close()
            gw.log.info("database closed in %.2fs", time.monotonic() - started)

    return app


def _register_routes(app: Sanic) -> None:
    from . import lifecycle
    from .api import compat, health, manage, openapi

    lifecycle.install(app)  # ops: rate limits, CORS, metrics, replication, jobs (before db open)
    from . import headers

    headers.install(app)  # hardening: undecodable header bytes are a 400, not a 500
    from . import versioning

    versioning.install(app, versioning.deprecations(app.ctx.settings.deprecated_routes))
    app.blueprint(health.bp)
    app.blueprint(openapi.bp)
    app.blueprint(compat.bp)
    app.blueprint(manage.bp)
    app.blueprint(manage.analytics_bp)
    from .api import inbound
    from .workers import alerts, delivery

    app.blueprint(inbound.bp)
    delivery.install(app)
    alerts.install(app)
    from . import events

    events.install(app)  # CONVERGER_EVENTS_URL: the outbox relay (a singleton role)
    from .web import install as install_web

    install_web(app)
    from . import realtime, tls_serve
    from .api import converger, directline

    tls_serve.install(app)  # HTTPS: the certificate manager, the HTTP port, /api/admin/tls
    app.blueprint(converger.bp)
    app.blueprint(directline.bp)
    realtime.install(app)


def _register_middleware(app: Sanic) -> None:
    hooks = app.ctx.hooks

    @hooks.request(priority=100)
    def _start(request: Request) -> HTTPResponse | None:
        rid = request.headers.get("x-request-id", "")
        if not (0 < len(rid) <= 128 and rid.isprintable()):
            rid = random_bytes(16).hex()  # buffered randomness: uuid4() costs a syscall each
        request.ctx.request_id = rid
        request.ctx.started = time.perf_counter()
        if request.path.startswith("/api/"):
            accept = request.headers.get("accept")
            if accept and not any(t in accept for t in ("json", "*/*", "application/*")):
                return errors.problem_response(
                    errors.ApiError(406, "not_acceptable", "this API answers application/json only")
                )
        return None

    @hooks.response(priority=100)
    def _finish(request: Request, response: HTTPResponse) -> None:
        rid = request.ctx.request_id
        if rid is not None:
            response.headers["x-request-id"] = rid
