"""Running the app: one process (SQLite has one writer), uvloop, graceful shutdown."""

from __future__ import annotations

from . import connlimit
from .app import create_app
from .config import Settings


def run(settings: Settings) -> int:
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
