"""``converger db copy``: a SQLite deployment (made by the real server, then grown by ``N``
activities with a delivery each) → PostgreSQL → a new SQLite file: every table identical, and
the report's counts and checksums agree at each step. A copy into a database that holds data, or
from a file that is not a converger database, is refused in one line."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import psycopg
import pytest

from store import copy as store_copy
from tests.support import postgres
from tests.support.api import Api
from tests.support.server import ROOT, Server

# 20,000 in `make test`; CONVERGER_COPY_ROWS=100000 for the figure (docs/scaling.md).
N = int(os.environ.get("CONVERGER_COPY_ROWS", "20000"))


def db_copy(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "db", "copy", "--from", source,
                           "--to", target], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env={**os.environ})


async def _deployment(data: Path) -> Path:
    """A SQLite deployment with tenants, channels, conversations, activities with deliveries,
    routing rules, tenant users (invitations), audit entries and SLA tiers, all made through the
    API of a real server; then N more activities with a delivery each, written into the file."""
    # A SQLite deployment whatever the run's mode (an empty URL is no URL).
    srv = Server(data, env={"CONVERGER_DATABASE_URL": ""}).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, srv.url)
            for name in ("copy-a", "copy-ü"):
                s = await api.setup(name, type="webhook", mode="duplex",
                                    config={"url": "http://127.0.0.1:9/never"})
                hook = await api.channel(s["tenant"]["id"], name="out", type="webhook",
                                         config={"url": "http://127.0.0.1:9/never"})
                await api.ok("POST", "/api/v1/routing_rules", 201, headers={
                    "x-api-key": s["api_key"]}, json={"routing_rule": {
                        "name": "to-hook", "source_channel_id": s["channel"]["id"],
                        "target_channel_ids": [hook["id"]]}})
                for i in range(20):
                    await api.post_activity(s["conversation"]["id"], s["api_key"],
                                            text=f"hello {i} ✓", metadata={"i": i})
                await api.ok("POST", f"/api/admin/tenants/{s['tenant']['id']}/rotate-key",
                             headers=api.admin)
            conv, tenant, channel = (s["conversation"]["id"], s["tenant"]["id"], hook["id"])
    finally:
        srv.stop()
    db = data / "converger.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        now = "2026-12-07T10:00:00.000000Z"
        conn.execute("BEGIN")
        conn.execute(
            """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
               INSERT INTO activities (id, tenant_id, conversation_id, seq, type, sender, text,
                                       attachments, metadata, inserted_at, updated_at)
               SELECT printf('%08x-0000-7000-8000-%012x', i, i), ?, ?, 1000 + i, 'message',
                      'user', 'bulk ' || i || ' — é', '[]', '{"n":' || i || '}', ?, ? FROM n""",
            (N, tenant, conv, now, now))
        conn.execute(
            """INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, conversation_id,
                                       status, attempts, last_error, inserted_at, updated_at)
               SELECT 'd' || substr(id, 2), id, ?, tenant_id, conversation_id, 'failed', 5,
                      'HTTP 500', inserted_at, updated_at
                 FROM activities WHERE seq > 1000""", (channel,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return db


def _dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        names = store_copy.tables(conn)
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in names}
    finally:
        conn.close()


@pytest.mark.timeout(900)
async def test_sqlite_to_postgresql_and_back_is_identical(tmp_path: Path) -> None:
    source = await _deployment(tmp_path / "data")
    with sqlite3.connect(source) as conn:  # the analytics job has counted the feed to its end
        conn.execute("UPDATE analytics_state SET value = (SELECT seq FROM sqlite_sequence "
                     "WHERE name = 'feed') WHERE name = 'activities_cursor'")
        cursor = conn.execute("SELECT value FROM analytics_state "
                              "WHERE name = 'activities_cursor'").fetchone()[0]
    conn.close()
    assert cursor > 0
    url = postgres.shared().create_database("copy_round_trip")
    there = db_copy(str(source), url)
    assert there.returncode == 0, there.stderr
    # The target's feed goes on after the copied cursor: its next event is counted, not skipped.
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT n FROM feed_counter").fetchone()[0] >= cursor  # type: ignore[index]
    assert "MISMATCH" not in there.stdout and "verified" in there.stdout, there.stdout
    lines = {line.split()[0]: line.split() for line in there.stdout.splitlines()[1:-1]}
    assert lines["activities"][1] == lines["activities"][2], lines["activities"]
    assert int(lines["activities"][1]) >= N + 40, lines["activities"]
    assert int(lines["deliveries"][1]) >= N, lines["deliveries"]
    for table in ("tenants", "channels", "routing_rules", "audit_logs", "sla_tiers"):
        assert int(lines[table][1]) > 0 and lines[table][3] == "ok", lines[table]

    back = tmp_path / "back.db"
    again = db_copy(url, str(back))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1:-1] == there.stdout.splitlines()[1:-1]  # same checksums
    original, returned = _dump(source), _dump(back)
    assert set(original) == set(returned)
    for table, rows in original.items():
        assert returned[table] == rows, table

    # Into a database that holds data: refused, nothing changed.
    refused = db_copy(str(source), url)
    assert refused.returncode == 2 and "already holds data" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_a_converger_database_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).close()
    proc = db_copy(str(plain), str(tmp_path / "out.db"))
    assert proc.returncode == 2 and "has no converger schema" in proc.stderr, proc.stderr
    proc = db_copy(str(tmp_path / "missing.db"), str(tmp_path / "out2.db"))
    assert proc.returncode == 2 and "no such SQLite file" in proc.stderr, proc.stderr
