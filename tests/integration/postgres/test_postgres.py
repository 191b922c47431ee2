"""PostgreSQL as the store, its own faults: each test starts a cluster of its own (initdb/pg_ctl
in a temporary directory, tests/support/postgres.py) so that it can stop and start it.

- a wrong URL, wrong credentials, a missing database, an unreachable server, a schema from a newer
  version: one line at start-up, exit 2, nothing listening;
- PostgreSQL going away under a running gateway: 503 ``storage_unavailable`` while it is away,
  never a 2xx for a write that was not committed, and recovery without a restart when it is back.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support import postgres
from tests.support.api import Api
from tests.support.server import ROOT, Server, free_port

SECRET = "test-secret-key-0123456789"


@pytest.fixture
def cluster() -> Iterator[postgres.Cluster]:
    c = postgres.Cluster().start()  # in a temporary directory of its own
    yield c
    c.destroy()


def serve(data: Path, url: str) -> subprocess.CompletedProcess[str]:
    """``converger serve`` that is expected to refuse to start (it would otherwise run on)."""
    env = {**os.environ, "CONVERGER_SECRET_KEY": SECRET, "CONVERGER_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--data-dir", str(data), "--host", "127.0.0.1",
         "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_bad_database_urls_are_one_line_at_start_up(cluster: postgres.Cluster,
                                                     tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    cases = [
        ("mysql://u:p@127.0.0.1/x", "must be a PostgreSQL URL"),
        (f"postgresql://{cluster.USER}@127.0.0.1:{cluster.port}/missing_db", "missing_db"),
        (f"postgresql://nobody_here:hunter2@127.0.0.1:{cluster.port}/postgres", "nobody_here"),
        (f"postgresql://u:hunter2@127.0.0.1:{dead}/x?connect_timeout=2", "cannot be opened"),
    ]
    for url, said in cases:
        proc = serve(tmp_path / "data", url)
        assert proc.returncode == 2, (url, proc.stdout, proc.stderr)
        out = proc.stderr.strip()
        assert "Traceback" not in out + proc.stdout, out
        assert len(out.splitlines()) == 1 and said in out, (url, out)
        assert "hunter2" not in out  # the password is never printed


def test_a_schema_from_a_newer_version_is_refused_unchanged(cluster: postgres.Cluster,
                                                            tmp_path: Path) -> None:
    from store import migrations
    from store.pg import MIGRATIONS_TABLE, PgConnection

    url = cluster.create_database("newer")
    conn = PgConnection.open(url)
    try:
        migrations.apply(conn)
        conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at) "
                     "VALUES (?, 'm9999_from_the_future', 'x')", (migrations.MIGRATION_SET,))
        tables = conn.execute("SELECT count(*) FROM information_schema.tables "
                              "WHERE table_schema = 'public'").fetchone()[0]
        proc = serve(tmp_path / "data", url)
        assert proc.returncode == 2, proc.stderr
        assert "m9999_from_the_future" in proc.stderr and "newer converger" in proc.stderr
        assert conn.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = 'public'").fetchone()[0] == tables
    finally:
        conn.close()


async def _until(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_postgresql_going_away_is_503_and_comes_back_without_a_restart(
        cluster: postgres.Cluster, tmp_path: Path) -> None:
    url = cluster.create_database("away")
    srv = Server(tmp_path / "data", env={"CONVERGER_DATABASE_URL": url}).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            s = await api.setup("pg-away")
            conv, key = s["conversation"]["id"], s["api_key"]
            accepted = [(await api.post_activity(conv, key, text="before"))["id"]]
            ready = srv.readiness()
            assert ready["checks"]["database"]["ok"] is True
            assert ready["checks"]["database"].get("backend") == "postgresql", ready

            cluster.stop("immediate")  # PostgreSQL gone: no goodbye to the connections
            statuses = set()
            for i in range(5):
                status, body, headers = await api.call(
                    "POST", f"/api/v1/conversations/{conv}/activities",
                    json={"text": f"while away {i}"}, headers={"x-api-key": key})
                statuses.add(status)
                if status == 201:  # impossible while it is away, but then it must be stored
                    accepted.append(body["data"]["id"])
                else:
                    assert status == 503 and body["code"] == "storage_unavailable", (status, body)
                    assert headers["content-type"].startswith("application/problem+json")
                    assert "retry-after" in {k.lower() for k in headers}
            assert statuses == {503}
            assert srv.readiness()["checks"]["database"]["ok"] is False

            cluster.start_again()

            async def writes() -> bool:
                status, body, _ = await api.call(
                    "POST", f"/api/v1/conversations/{conv}/activities", json={"text": "after"},
                    headers={"x-api-key": key, "x-idempotency-key": "after-1"})
                if status == 201:
                    accepted.append(body["data"]["id"])
                return status == 201

            await _until(writes, 30, "writes never came back after PostgreSQL did")
            assert srv.proc is not None and srv.proc.poll() is None  # the same process
            listed = await api.ok("GET", f"/api/v1/conversations/{conv}/activities",
                                  headers={"x-api-key": key})
            stored = [a["id"] for a in listed["data"]]
            assert set(accepted) <= set(stored), (accepted, stored)
            assert srv.readiness()["checks"]["database"]["ok"] is True
    finally:
        srv.stop()
