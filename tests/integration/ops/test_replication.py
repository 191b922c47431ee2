"""Replication with the real ``litestream`` executable and a ``file://`` replica."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.api import Api
from tests.support.postgres import sqlite_only
from tests.support.server import ROOT


async def _post_many(api: Api, conv: str, key: str, n: int, concurrency: int = 16) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await api.post_activity(conv, key, text=f"m{i}")

    await asyncio.gather(*(one(i) for i in range(n)))


@sqlite_only("Litestream replicates the SQLite file; with PostgreSQL /readyz reports the database's health instead (tests/integration/postgres/test_postgres.py) and backups are PostgreSQL's own")
async def test_restore_after_losing_the_database(make_server, session, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    env = {"CONVERGER_REPLICA_URL": f"file://{replica}", "CONVERGER_RATE_LIMIT_ACTIVITIES": "0"}
    srv = make_server(env=env)
    api = Api(session, srv.url)
    s = await api.setup("repl", type="webhook", config={"url": "http://127.0.0.1:9/hook"})
    conv, key = s["conversation"]["id"], s["api_key"]
    await _post_many(api, conv, key, 5000)
    assert srv.stop() == 0, srv.log()
    db = srv.data_dir / "converger.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    assert not db.exists()

    srv.start()
    items = (await api.ok("GET", f"/api/v1/conversations/{conv}/activities?include=deliveries",
                          headers={"x-api-key": key}))["data"]
    assert len(items) == 5000
    assert sorted(a["text"] for a in items) == sorted(f"m{i}" for i in range(5000))
    assert all(len(a["deliveries"]) == 1 for a in items)
    assert "restore" in srv.log_path.read_text()  # the whole log: log() is its tail

    # converger restore by hand, to another file, from the same replica.
    srv.stop()
    out = tmp_path / "copy.db"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "restore", "--data-dir", str(tmp_path / "cli"),
         "--replica-url", f"file://{replica}", "--to", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    with sqlite3.connect(out) as conn:
        assert conn.execute("SELECT count(*) FROM activities").fetchone()[0] == 5000
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 5000
    again = subprocess.run(
        [sys.executable, "-m", "gateway", "restore", "--data-dir", str(tmp_path / "cli"),
         "--replica-url", f"file://{replica}", "--to", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--force" in again.stderr


@sqlite_only("Litestream replicates the SQLite file; with PostgreSQL /readyz reports the database's health instead (tests/integration/postgres/test_postgres.py) and backups are PostgreSQL's own")
async def test_litestream_is_restarted_and_readyz_says_so(make_server, session, tmp_path) -> None:
    srv = make_server(env={"CONVERGER_REPLICA_URL": f"file://{tmp_path / 'replica'}"})
    api = Api(session, srv.url)
    deadline = time.monotonic() + 15
    while True:
        status, body, _ = await api.call("GET", "/readyz")
        if status == 200 and body["checks"]["replication"]["pid"]:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
    first = body["checks"]["replication"]
    assert first["state"] == "running" and first["restarts"] == 0
    os.kill(first["pid"], signal.SIGKILL)

    seen_unready = False
    deadline = time.monotonic() + 15
    while True:
        status, body, _ = await api.call("GET", "/readyz")
        rep = body["checks"]["replication"]
        if status == 503:
            assert rep["ok"] is False and rep["state"] == "restarting"
            seen_unready = True
        elif rep["restarts"] == 1 and rep["pid"]:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
    assert seen_unready
    assert rep["pid"] != first["pid"] and rep["state"] == "running"
    status, text, _ = await api.call("GET", "/metrics")
    assert "converger_replication_up 1.0" in text
    assert "converger_replication_restarts 1.0" in text
