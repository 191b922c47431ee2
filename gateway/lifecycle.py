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

import asyncio
import faulthandler
import sys
import time

from sanic import Sanic

SHUTDOWN_REPORT_AFTER = 6.0  # seconds; Server.stop() in the tests waits 15, an operator ~10


def install(app: Sanic) -> None:
    """Install rate limits, CORS, metrics, traces, request logs, replication and background jobs."""
    from . import cors, metrics, ratelimit, replication, tracing

    replication.install(app)  # first: its restore must run before the database opens
    ratelimit.install(app)
    cors.install(app)
    metrics.install(app)
    tracing.install(app)
    from . import mail
    from .workers import media, scheduler

    scheduler.install(app)
    media.install(app)
    mail.install(app)


def watch_shutdown(app: Sanic) -> None:
    """If shutdown has not finished ``SHUTDOWN_REPORT_AFTER`` seconds after it began, log every
    task still pending on the event loop with where it waits, and dump every thread's stack to
    stderr: a stuck stop names itself instead of ending, silently, in a supervisor's SIGKILL.
    Registered last, so it runs first."""

    @app.before_server_stop
    async def _arm(app: Sanic) -> None:
        loop = asyncio.get_running_loop()
        began = time.monotonic()

        def report() -> None:
            # The shutdown's own task is among them: where a stuck stop listener waits.
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            lines = []
            for task in sorted(tasks, key=lambda t: t.get_name()):
                frames = task.get_stack()[-4:]  # the innermost: where it waits
                where = " -> ".join(f"{f.f_code.co_name} ({f.f_code.co_filename.rsplit('/', 1)[-1]}:"
                                    f"{f.f_lineno})" for f in frames) or "not started"
                lines.append(f"{task.get_name()}: {where}")
            app.ctx.log.warning("shutdown still running after %.1fs; %d pending tasks: %s",
                                time.monotonic() - began, len(tasks), " | ".join(lines))
            # And every thread's stack (the database writer's, Litestream's relay...) on stderr.
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)

        # Not cancelled: when the loop closes at the end of a shutdown, the timer goes with it.
        loop.call_later(SHUTDOWN_REPORT_AFTER, report)
