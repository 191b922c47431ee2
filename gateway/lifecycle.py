"""The operational parts of the app, installed in one place so their order is visible.

Start-up (``before_server_start`` listeners run in registration order, and these are registered
before ``create_app`` opens the database):
  1. replication: restore the database from the replica when the file is missing;
  2. (create_app) open the database, apply migrations;
  3. ``after_server_start``: start Litestream, the metrics port, the background jobs.

Shutdown on SIGTERM/SIGINT (Sanic stops accepting, then waits up to
``GRACEFUL_SHUTDOWN_TIMEOUT`` for in-flight requests; ``*_server_stop`` listeners run in
reverse registration order):
  1. ``before_server_stop``: stop the background jobs and the metrics port;
  2. (create_app) close the database: queued writes finish, the WAL is synced;
  3. ``after_server_stop`` (registered first, so it runs last): stop Litestream, which makes its
     final sync of everything committed before it exits.
"""

from __future__ import annotations

from sanic import Sanic


def install(app: Sanic) -> None:
    """Install rate limits, CORS, metrics, traces, request logs, replication and background jobs."""
    from . import cors, metrics, ratelimit, replication, tracing

    replication.install(app)  # first: its restore must run before the database opens
    ratelimit.install(app)
    cors.install(app)
    metrics.install(app)
    tracing.install(app)
    from .workers import scheduler

    scheduler.install(app)
