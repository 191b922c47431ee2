"""Crash and restart: the real ``python -m gateway serve`` process, SIGKILLed in the middle of
a burst of posts, of deliveries, of a migration and of a Litestream sync. After a restart
nothing acknowledged is lost, ``seq`` stays unique and contiguous per conversation, and every
pending delivery completes.

Also proved elsewhere (not repeated here): 1,000 deliveries to a slow receiver survive a
SIGKILL and duplicates carry the same ``webhook-id``
(tests/integration/delivery/test_crash.py::test_sigkill_mid_delivery_loses_nothing); 30
sequential 201s survive a SIGKILL (tests/integration/gateway/test_restart.py).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import replication
from tests.support import postgres
from tests.support.api import Api
from tests.support.server import ROOT, Server, open_database

from .util import Recorder, deliveries, wait_for


def _rows(db_path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    # A server's database (its PostgreSQL one in that mode), or a SQLite file of the test's own.
    conn = (open_database(db_path.parent) if db_path.name == "converger.db"
            else sqlite3.connect(db_path))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _check_seqs(db_path: Path) -> dict[str, int]:
    """Every conversation's seqs are exactly 1..n; returns n per conversation."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for conv, seq in _rows(db_path, "SELECT conversation_id, seq FROM activities ORDER BY seq"):
        seqs[conv].append(seq)
    for conv, got in seqs.items():
        assert got == list(range(1, len(got) + 1)), f"{conv}: seqs not contiguous/unique"
    return {conv: len(got) for conv, got in seqs.items()}


async def _post(api: Api, conversation_id: str, api_key: str, text: str, key: str | None,
                answers: list[int]) -> dict[str, Any] | None:
    """One post of a burst: the activity of its 201; None when the kill cut it off (no
    answer). Every answer other than 201 (a 5xx above all) is recorded in ``answers``: the
    test fails on any, instead of counting a server error as "not acknowledged"."""
    headers = {"x-api-key": api_key}
    if key is not None:
        headers["x-idempotency-key"] = key
    try:
        status, body, _ = await api.call("POST", f"/api/v1/conversations/{conversation_id}/activities",
                                         json={"text": text}, headers=headers)
    except aiohttp.ClientError:
        return None  # the kill cut it off: not acknowledged
    if status != 201:
        answers.append(status)
        return None
    return body["data"]


async def _kill_after(srv: Server, acked: Any, n: int, killed: asyncio.Event | None = None,
                      timeout: float = 60.0) -> None:
    """SIGKILL the server once ``n`` posts were acknowledged (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while len(acked) < n:
        assert time.monotonic() < deadline, f"only {len(acked)} of {n} posts acknowledged"
        assert srv.proc is not None and srv.proc.poll() is None, srv.log()
        await asyncio.sleep(0.005)
    srv.kill()
    if killed is not None:
        killed.set()


# -- a burst of posts ----------------------------------------------------------------------------


async def test_sigkill_during_a_burst_of_posts(fresh_server: Server, session: aiohttp.ClientSession) -> None:
    srv = fresh_server.start()
    api = Api(session, srv.url)
    setups = [await api.setup(f"burst{i}") for i in range(3)]
    acked: dict[str, dict[str, Any]] = {}  # idempotency key → the 201's activity
    tried: list[tuple[dict[str, Any], str]] = []
    killed = asyncio.Event()
    sem = asyncio.Semaphore(48)

    answers: list[int] = []  # any answer but a 201 (a 5xx) fails the test

    async def post(s: dict[str, Any], key: str) -> None:
        tried.append((s, key))
        async with sem:
            if killed.is_set():
                return
            a = await _post(api, s["conversation"]["id"], s["api_key"], key, key, answers)
            if a is not None:
                acked[key] = a

    posts = [post(setups[i % 3], f"k{i}") for i in range(3000)]
    await asyncio.gather(_kill_after(srv, acked, 600, killed), *posts)
    assert answers == [], f"answers other than 201 during the burst: {Counter(answers)}"
    assert 600 <= len(acked) < 3000, "the kill came too late to test anything"

    db = srv.data_dir / "converger.db"
    srv.start()
    counts = _check_seqs(db)
    stored = {key: (aid, seq) for aid, key, seq in _rows(
        db, "SELECT id, idempotency_key, seq FROM activities")}
    for key, a in acked.items():  # every 201 is there, with the seq it was given
        assert stored[key] == (a["id"], a["seq"])
    assert sum(counts.values()) == len(stored) >= len(acked)
    print(f"{len(acked)} acknowledged, {len(stored)} committed at the kill")

    # Retrying every request with its key after the restart: the acknowledged ones (and any
    # committed whose answer was lost) give the same activity; the rest are created once.
    sem = asyncio.Semaphore(32)

    async def retry(s: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
        async with sem:
            return key, await api.post_activity(s["conversation"]["id"], s["api_key"], key=key, text=key)

    again = dict(await asyncio.gather(*(retry(s, k) for s, k in tried)))
    for key, (aid, seq) in stored.items():
        assert (again[key]["id"], again[key]["seq"]) == (aid, seq)
    counts = _check_seqs(db)
    assert sum(counts.values()) == len(tried)
    assert len({k for _, k, _ in _rows(db, "SELECT id, idempotency_key, seq FROM activities")}) == len(tried)


async def test_sigkill_during_echo_posts_leaves_no_message_unanswered(
    fresh_server: Server, session: aiohttp.ClientSession
) -> None:
    """The echo bot's reply is committed with the message it answers: after a SIGKILL in the
    middle of a burst, every stored message has exactly one reply, right after it."""
    srv = fresh_server.start()
    api = Api(session, srv.url)
    s = await api.setup("echo-burst", type="echo")
    conv, key = s["conversation"]["id"], s["api_key"]
    acked: dict[str, dict[str, Any]] = {}
    killed = asyncio.Event()
    sem = asyncio.Semaphore(32)

    answers: list[int] = []

    async def post(i: int) -> None:
        async with sem:
            if killed.is_set():
                return
            a = await _post(api, conv, key, f"e{i}", f"e{i}", answers)
            if a is not None:
                acked[f"e{i}"] = a

    await asyncio.gather(_kill_after(srv, acked, 150, killed), *(post(i) for i in range(1500)))
    assert answers == [], f"answers other than 201 during the burst: {Counter(answers)}"
    assert 150 <= len(acked) < 1500, "the kill came too late to test anything"
    db = srv.data_dir / "converger.db"
    srv.start()
    _check_seqs(db)
    rows = _rows(db, "SELECT seq, sender, text, idempotency_key FROM activities "
                     "WHERE conversation_id = ? ORDER BY seq", conv)
    users = [r for r in rows if r[1] == "user"]
    assert len(rows) == 2 * len(users) >= 2 * len(acked)
    for i in range(0, len(rows), 2):  # message, reply, message, reply, …
        (seq, sender, text, k), (rseq, rsender, rtext, rk) = rows[i], rows[i + 1]
        assert (sender, rsender, rseq, rtext, rk) == ("user", "bot", seq + 1, text, None)
    stored = {k: seq for seq, _, _, k in users}
    for k, a in acked.items():
        assert stored[k] == a["seq"]


# -- deliveries ------------------------------------------------------------------------------------


async def test_sigkill_during_deliveries_duplicates_only_what_was_in_flight(
    fresh_server: Server, session: aiohttp.ClientSession
) -> None:
    # After 80 answered calls the receiver holds the next ones unanswered: at the kill some are
    # in flight and the rest pending, however fast or slow the machine sends them.
    receiver = await Recorder(hold_after=80).start()
    try:
        fresh_server.extra_env.update({"CONVERGER_DELIVERY_CONCURRENCY": "8"})
        srv = fresh_server.start()
        api = Api(session, srv.url)
        s = await api.setup("d", type="webhook", config={"url": receiver.url("d")})
        ids = [(await api.post_activity(s["conversation"]["id"], s["api_key"], text=f"d{i}"))["id"]
               for i in range(300)]

        async def some_in_flight() -> bool:
            return receiver.held > 0

        await wait_for(some_in_flight, 20, "no deliveries in flight before the kill")
        srv.kill()
        receiver.release()

        async def drained() -> bool:  # requests already on the wire still reach the receiver
            return receiver.open_connections() == 0

        await wait_for(drained, 10, "the killed server's connections stay open")
        called_before = {body["id"] for _, body in receiver.calls["d"]}
        n_before = len(receiver.calls["d"])
        db = srv.data_dir / "converger.db"
        sent_at_kill = {a for a, in _rows(db, "SELECT activity_id FROM deliveries WHERE status = 'sent'")}
        # In flight = the receiver got it, but its success was not committed yet.
        in_flight = called_before - sent_at_kill
        assert len(called_before) == n_before  # no duplicates before the kill
        assert in_flight, "nothing was in flight at the kill: nothing tested"
        assert len(in_flight) <= 2 * 8, in_flight  # bounded by the workers (+ one commit batch)

        srv.start()

        async def all_sent() -> bool:
            rows = await deliveries(api, channel_id=s["channel"]["id"])
            return len(rows) == 300 and all(r["status"] == "sent" for r in rows)

        await wait_for(all_sent, 30, "deliveries still pending after the restart")
        per_activity = Counter(body["id"] for _, body in receiver.calls["d"])
        assert set(per_activity) == set(ids)  # every delivery completed
        dupes = {a for a, n in per_activity.items() if n > 1}
        assert dupes <= in_flight  # only what was in flight at the kill is sent twice
        assert max(per_activity.values()) <= 2
        by_activity = defaultdict(set)
        for headers, body in receiver.calls["d"]:
            by_activity[body["id"]].add(headers["webhook-id"])
        assert all(len(v) == 1 for v in by_activity.values())  # the dedupe key is stable
        print(f"{n_before} calls before the kill, {len(in_flight)} in flight, {len(dupes)} duplicates")
    finally:
        receiver.release()
        await receiver.stop()


# -- a migration -----------------------------------------------------------------------------------

# A test-only migration, added through sitecustomize in the server process: it backfills a new
# column on every activity, builds a large table (so it takes a while), tells the test it is
# mid-way, and then (with the stall variable set) waits to be killed.
SITECUSTOMIZE = '''
import os, time
if os.environ.get("CONVERGER_TEST_MIGRATION_MARKER"):
    import store.migrations as m
    _orig = m.migrations

    def _up(db):
        db.execute("ALTER TABLE activities ADD COLUMN test_len INTEGER")
        db.execute("UPDATE activities SET test_len = length(text)")
        db.execute("CREATE TABLE test_big (i INTEGER PRIMARY KEY, pad BLOB)")
        db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) "
                   "INSERT INTO test_big SELECT i, randomblob(200) FROM n")
        open(os.environ["CONVERGER_TEST_MIGRATION_MARKER"], "w").close()
        if os.environ.get("CONVERGER_TEST_MIGRATION_STALL"):
            time.sleep(120)

    def migrations():
        mset = _orig()
        mset(name="m9999_test_backfill")(_up)
        return mset

    m.migrations = migrations
'''


@pytest.mark.skipif(bool(os.environ.get("CONVERGER_TEST_BINARY")),
                    reason="the test migration is added through the Python server's sitecustomize")
@postgres.sqlite_only("a migration killed midway through the file (PostgreSQL's DDL is "
                      "transactional: test_dialect applies the same migrations there)")
async def test_sigkill_during_a_migration(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    marker = tmp_path / "migrating"
    # One process: the test's migration exists only in the patched migration set, which a
    # worker process would check (and refuse as unknown) after the supervisor applied it.
    srv = Server(tmp_path / "data", env={"CONVERGER_WORKERS": "1"}).start()
    api = Api(session, srv.url)
    s = await api.setup("mig")
    conv = s["conversation"]["id"]
    posted = [(await api.post_activity(conv, s["api_key"], text="x" * i))["id"] for i in range(1, 101)]
    assert srv.stop() == 0, srv.log()

    srv.extra_env.update({
        "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}",
        "CONVERGER_TEST_MIGRATION_MARKER": str(marker),
        "CONVERGER_TEST_MIGRATION_STALL": "1",
    })
    srv.spawn()
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert srv.proc is not None and srv.proc.poll() is None, srv.log()
        assert time.monotonic() < deadline, "the migration never started"
        await asyncio.sleep(0.02)
    srv.kill()  # mid-migration: its transaction is open, its pages partly in the WAL

    db = srv.data_dir / "converger.db"
    assert ("m9999_test_backfill",) not in _rows(db, "SELECT name FROM _sqlite_migrations")
    assert "test_len" not in {r[1] for r in _rows(db, "PRAGMA table_info(activities)")}
    assert not _rows(db, "SELECT name FROM sqlite_master WHERE name = 'test_big'")
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]

    marker.unlink()
    del srv.extra_env["CONVERGER_TEST_MIGRATION_STALL"]
    srv.start(timeout=60)  # the migration runs again, whole, and completes
    try:
        assert ("m9999_test_backfill",) in _rows(db, "SELECT name FROM _sqlite_migrations")
        rows = _rows(db, "SELECT id, seq, test_len FROM activities ORDER BY seq")
        assert [r[0] for r in rows] == posted
        assert [r[1] for r in rows] == list(range(1, 101))
        assert [r[2] for r in rows] == list(range(1, 101))
        assert _rows(db, "SELECT count(*) FROM test_big") == [(50000,)]
        nxt = await api.post_activity(conv, s["api_key"], text="after")
        assert nxt["seq"] == 101
    finally:
        srv.stop()


# -- a Litestream sync ---------------------------------------------------------------------------


def _restore(replica: Path, work: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "restore", "--data-dir", str(work),
         "--replica-url", f"file://{replica}", "--to", str(out), "--force"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)


def _litestreams_for(data_dir: Path) -> list[int]:
    """Pids of litestream processes replicating ``data_dir`` (orphans after a crash)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"litestream") and str(data_dir).encode() in b" ".join(cmd):
            pids.append(int(pid))
    return pids


@pytest.mark.skipif(replication.executable() is None, reason="litestream not installed")
@postgres.sqlite_only("Litestream replicates the SQLite file")
async def test_sigkill_during_a_litestream_sync(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    replica = tmp_path / "replica"
    srv = Server(tmp_path / "data", env={"CONVERGER_REPLICA_URL": f"file://{replica}"}).start()
    api = Api(session, srv.url)
    s = await api.setup("ls")
    conv, key = s["conversation"]["id"], s["api_key"]
    sem = asyncio.Semaphore(16)
    acked: set[str] = set()
    answers: list[int] = []  # any answer but a 201 (a 5xx) fails the test

    async def post(text: str) -> None:
        async with sem:
            a = await _post(api, conv, key, text, None, answers)
            if a is not None:
                acked.add(a["id"])

    await asyncio.gather(*(post(f"a{i}") for i in range(300)))
    first = set(acked)

    # Wait until the replica holds the first batch (a sync has shipped it) ...
    probe = tmp_path / "probe.db"
    deadline = time.monotonic() + 30
    while True:
        proc = _restore(replica, tmp_path / "cli", probe)
        if proc.returncode == 0 and _rows(probe, "SELECT count(*) FROM activities") == [(300,)]:
            break
        assert time.monotonic() < deadline, proc.stderr
        await asyncio.sleep(0.2)

    # ... then kill -9 while a second burst is being written and replicated.
    await asyncio.gather(_kill_after(srv, acked, 300 + 200), *(post(f"b{i}") for i in range(3000)))
    assert answers == [], f"answers other than 201 during the bursts: {Counter(answers)}"
    second = acked - first
    assert 200 <= len(second) < 3000

    async def no_litestream() -> bool:
        return _litestreams_for(srv.data_dir) == []

    await wait_for(no_litestream, 10, "litestream outlived the killed server")

    # Restoring now gives a consistent prefix: everything synced before the kill, no holes.
    at_kill = tmp_path / "at-kill.db"
    proc = _restore(replica, tmp_path / "cli", at_kill)
    assert proc.returncode == 0, proc.stderr
    assert _rows(at_kill, "PRAGMA integrity_check") == [("ok",)]
    restored = {a for a, in _rows(at_kill, "SELECT id FROM activities")}
    assert first <= restored
    _check_seqs(at_kill)

    # Restarted, the server's Litestream resumes from the surviving WAL and ships the rest:
    # a restore after a clean stop holds every acknowledged activity.
    srv.start()

    async def replicating() -> bool:
        status, body, _ = await api.call("GET", "/readyz")
        return status == 200 and body["checks"]["replication"]["state"] == "running"

    await wait_for(replicating, 20, "replication did not resume")

    async def synced() -> bool:  # its start-up log lines written: from here on it is quiet
        body = (await api.call("GET", "/readyz"))[1]
        return body["checks"]["replication"]["lag_seconds"] is not None

    await wait_for(synced, 20, "litestream never synced")
    # Killed again while idle (Litestream writes no log line then, so a broken pipe would not
    # end it): the kernel ends it with the server (PR_SET_PDEATHSIG).
    srv.kill()

    async def no_orphan() -> bool:
        return _litestreams_for(srv.data_dir) == []

    await wait_for(no_orphan, 10, "litestream outlived the server killed while idle")
    srv.start()
    await wait_for(replicating, 20, "replication did not resume")
    assert srv.stop() == 0, srv.log()
    final = tmp_path / "final.db"
    proc = _restore(replica, tmp_path / "cli", final)
    assert proc.returncode == 0, proc.stderr
    assert acked <= {a for a, in _rows(final, "SELECT id FROM activities")}
    _check_seqs(final)
    print(f"{len(restored)} restorable at the kill, {len(acked)} acknowledged, all in the final restore")
