"""Running the app: one process, or N worker processes under a supervisor (``--workers N``).

- ``workers == 1``: one process (uvloop, graceful shutdown), no supervisor.
- ``workers > 1``: :mod:`gateway.supervisor` binds the port and starts N copies of this program
  with ``CONVERGER_WORKER_SLOT`` set; each copy lands in :func:`run_worker`, builds the same
  app with a :class:`gateway.cluster.Cluster` and serves on the inherited socket.

HTTPS served by converger itself (its HTTP port, ACME challenges, certificate renewal) runs in
one process: with ``CONVERGER_DOMAINS`` or ``CONVERGER_TLS_CERT`` set there is one worker, whatever
``CONVERGER_WORKERS`` says (put a TLS proxy in front to use more).
"""

from __future__ import annotations

import logging
import socket

from . import connlimit
from .app import create_app
from .config import Settings


def worker_count(settings: Settings) -> int:
    """How many processes to run (HTTPS served by converger itself: one)."""
    count = settings.worker_count
    if count > 1 and settings.tls:
        if settings.workers.strip().lower() != "auto":
            logging.getLogger("converger").warning(
                "CONVERGER_WORKERS=%s: HTTPS served by converger itself runs in one process; "
                "serving with one (put a TLS proxy in front to use more)", settings.workers)
        return 1
    return count


def run(settings: Settings) -> int:
    from . import supervisor

    if supervisor.worker_identity() is not None:
        return run_worker()
    count = worker_count(settings)
    if count > 1:
        from . import logs

        logs.configure(settings.log_level)
        return supervisor.supervise(settings, count)
    files = connlimit.raise_file_limit()  # before the app sizes its connection cap from it
    app = create_app(settings, name="converger")
    app.ctx.log.info("file limit %d; connections: at most %d, %s per IP", files,
                     app.ctx.conn_limits.total, settings.max_connections_per_ip or "no cap")
    tls = app.ctx.tls  # gateway/tls_serve.py: its context swaps certificates in place
    scheme, port = ("https", settings.https_port) if tls else ("http", settings.port)
    app.ctx.log.info("converger listening on %s://%s:%s", scheme, settings.host, port)
    app.run(
        host=settings.host, port=port, ssl=tls.context if tls else None, single_process=True,
        access_log=False,  # gateway.metrics writes the request log (JSON, with request id)
        motd=False, debug=False, auto_reload=False,
        protocol=connlimit.GuardedProtocol,
    )
    return 0


def run_worker() -> int:
    """One supervised worker: the supervisor's settings, its socket, a cluster identity."""
    from . import supervisor
    from .cluster import Cluster

    ident = supervisor.worker_identity()
    assert ident is not None
    slot, size, run_dir, fd = ident
    settings = supervisor.worker_settings()
    connlimit.raise_file_limit()
    app = create_app(settings, name="converger", cluster=Cluster(slot, size, run_dir))
    sock = socket.socket(fileno=fd)
    app.run(
        sock=sock, single_process=True, access_log=False, motd=False, debug=False,
        auto_reload=False, protocol=connlimit.GuardedProtocol,
    )
    return 0
