"""``/livez`` (the process answers) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

import inspect
import time

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from ..http import gw, json

bp = Blueprint("health")


@bp.get("/livez")
async def livez(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


@bp.get("/readyz")
async def readyz(request: Request) -> HTTPResponse:
    ctx = gw(request)
    # Sanic serves requests while the after-start listeners (workers, replication, …) still
    # run; a SIGTERM then aborts start-up. Ready only once start-up has finished (and no
    # longer once shutdown has begun).
    checks: dict[str, dict[str, object]] = {"startup": {"ok": bool(request.app.state.is_running)}}
    # With PostgreSQL this is the database's health (Litestream is the SQLite file's backup).
    backend = ctx.db.dialect
    started = time.perf_counter()
    try:
        await ctx.db.write(lambda conn: conn.execute("SELECT 1").fetchone())
        checks["database"] = {"ok": True, "backend": backend,
                              "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:  # any failure to write means not ready
        checks["database"] = {"ok": False, "backend": backend, "error": str(exc)}
    for name, probe in list(ctx.readiness.items()):
        try:
            result = probe()
            checks[name] = await result if inspect.isawaitable(result) else result
        except Exception as exc:  # e.g. the workers' heartbeats are in the database, which is gone
            checks[name] = {"ok": False, "error": str(exc)}
    ok = all(c.get("ok") for c in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    # Ready, but something needs a look (e.g. a certificate renewal failing while the current
    # certificate still serves): named here so a probe that reads only the top level sees it.
    warnings = [f"{name}: {c['warning']}" for name, c in checks.items() if c.get("warning")]
    if warnings:
        body["warnings"] = warnings
    return json(body, status=200 if ok else 503)
