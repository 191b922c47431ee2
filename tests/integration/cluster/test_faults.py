"""Three worker processes under faults and limits: a worker SIGKILLed during a burst of posts
and deliveries (nothing accepted is lost, every delivery completes, the worker comes back); a
tenant's rate limit holds for the whole gateway; the scheduler runs each job once per period
and moves when its process is killed; one ``/metrics`` scrape reports every process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api
from tests.support.postgres import sqlite_only
from tests.support.server import Server, open_database

from .conftest import WORKERS, cluster_env


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def _start(tmp_path: Path, **env: str) -> Server:
    return Server(tmp_path / "data", env=cluster_env(**env)).start(timeout=60)


async def test_sigkill_of_a_worker_during_a_burst_loses_nothing(
    tmp_path: Path, spread: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.delay["burst"] = 0.02
    srv = _start(tmp_path)
    try:
        api = Api(spread, srv.url)
        s = await api.setup("burst", type="webhook", config={"url": receiver.url("burst")})
        conv, key = s["conversation"]["id"], s["api_key"]
        victim = next(w for w in srv.workers() if w["slot"] == 1)
        accepted: list[str] = []
        refused = 0
        by: set[int] = set()

        async def post(i: int) -> None:
            nonlocal refused
            try:
                async with spread.post(f"{srv.url}/api/v1/conversations/{conv}/activities",
                                       json={"text": f"m{i}"}, headers={"x-api-key": key}) as r:
                    body = await r.json()
                    if r.status == 201:
                        accepted.append(body["data"]["id"])
                        by.add(int(r.headers["x-converger-worker"]))
                    else:
                        refused += 1
            except aiohttp.ClientError:  # the connection died with the worker: not accepted
                refused += 1

        sem = asyncio.Semaphore(16)
        held: list[str] = []
        killed = asyncio.Event()  # the posts after the 150th go on once the kill has landed

        def leases() -> list[str]:  # deliveries the victim's slot has claimed and not finished
            conn = open_database(srv.data_dir, readonly=True)
            try:
                return [r[0] for r in conn.execute(
                    "SELECT id FROM deliveries WHERE claim_token LIKE 'w1.%'").fetchall()]
            finally:
                conn.close()

        async def limited(i: int) -> None:
            if i > 150:
                await killed.wait()
            async with sem:
                if i == 150:
                    # Mid-burst, once the victim has taken posts and holds deliveries (waited
                    # for, not assumed from the count: on a fast machine it may hold none at
                    # the 150th post); the receiver is slowed meanwhile so its sends stay in
                    # flight until the kill lands.
                    receiver.delay["burst"] = 1.0

                    extra = iter(range(1000, 2000))

                    async def holding() -> bool:
                        if victim["pid"] not in by:  # more posts until it has taken one
                            await post(next(extra))
                            return False
                        return bool(leases())

                    await _until(holding, 60, "worker 1 never took a post and a delivery")
                    os.kill(victim["pid"], signal.SIGKILL)
                    held.extend(leases())  # what it held when it died
                    killed.set()
                    receiver.delay["burst"] = 0.02
                await post(i)

        await asyncio.gather(*(limited(i) for i in range(400)))
        assert len(accepted) >= 300, (len(accepted), refused)
        assert victim["pid"] in by, "the killed worker took no posts before it died"
        assert held, "the killed worker held no delivery: nothing tested"

        # Every 201 is stored...
        listed = await api.ok("GET", f"/api/v1/conversations/{conv}/activities",
                              headers={"x-api-key": key})
        stored = {a["id"] for a in listed["data"]}
        assert set(accepted) <= stored
        # ... every delivery completes (the killed worker's leases are given back by its
        # successor in the same slot) ...
        channel = s["channel"]["id"]

        async def all_sent() -> bool:
            _, body, _ = await api.call(
                "GET", f"/api/admin/deliveries?channel_id={channel}&status=pending&limit=1",
                headers=api.admin)
            return body["data"] == []

        await _until(all_sent, 90, "deliveries still pending after the kill")
        delivered = {c.json()["id"] for c in receiver.calls["burst"]}
        assert stored <= delivered
        conn = open_database(srv.data_dir, readonly=True)
        try:  # what the victim held was finished by its successor
            marks = ",".join("?" * len(held))
            assert {r[0] for r in conn.execute(
                f"SELECT status FROM deliveries WHERE id IN ({marks})", held)} == {"sent"}
        finally:
            conn.close()
        # ... and the worker was restarted (its successor reports itself once it has started,
        # which on a loaded machine may come after the deliveries are done).
        async def replaced() -> bool:
            workers = srv.workers()
            slot1 = [w for w in workers if w["slot"] == 1]
            return len(workers) == WORKERS and bool(slot1) and slot1[0]["pid"] != victim["pid"]

        await _until(replaced, 60, "worker 1 was not replaced")
        # (the whole log: on PostgreSQL, retried transient write errors after the kill can push
        # the line out of the tail that srv.log() returns)
        assert f"worker 1 (pid {victim['pid']}) died" in srv.log_path.read_text(errors="replace")
    finally:
        srv.stop(timeout=40)


async def test_a_tenant_rate_limit_holds_across_the_processes(
    tmp_path: Path, spread: aiohttp.ClientSession
) -> None:
    srv = _start(tmp_path, CONVERGER_RATE_LIMIT_ACTIVITIES="100")
    try:
        api = Api(spread, srv.url)
        s = await api.setup("limited")
        conv, key = s["conversation"]["id"], s["api_key"]
        statuses: list[int] = []
        by: set[int] = set()
        sem = asyncio.Semaphore(12)

        async def post(i: int) -> None:
            async with sem, spread.post(f"{srv.url}/api/v1/conversations/{conv}/activities",
                                        json={"text": f"r{i}"}, headers={"x-api-key": key}) as r:
                statuses.append(r.status)
                by.add(int(r.headers["x-converger-worker"]))

        await asyncio.gather(*(post(i) for i in range(200)))
        created = statuses.count(201)
        assert len(by) == WORKERS, f"posts did not reach every process: {by}"
        assert 90 <= created <= 110, f"{created} of 200 accepted at a limit of 100/min"
        assert statuses.count(429) == 200 - created

        # One scrape reports the whole gateway: every process counts every activity.
        totals = set()
        for _ in range(6):
            async with spread.get(f"{srv.url}/metrics") as r:
                text = await r.text()
            m = re.search(r"^converger_activities_created_total (\S+)$", text, re.M)
            assert m, text[:2000]
            totals.add(float(m.group(1)))
        assert totals == {float(created)}
    finally:
        srv.stop(timeout=40)


def _job(data_dir: Path, name: str) -> tuple[int, int, float] | None:
    """(runs, pid of the process that ran it last, when: epoch seconds) of a periodic job."""
    conn = open_database(data_dir, readonly=True)
    try:
        row = conn.execute("SELECT runs, pid, last_run FROM job_runs WHERE name = ?",
                           (name,)).fetchone()
    finally:
        conn.close()
    if not row:
        return None
    return row[0], row[1], datetime.fromisoformat(str(row[2]).replace("Z", "+00:00")).timestamp()


async def test_the_scheduler_runs_each_job_once_per_period_and_moves_when_killed(
    tmp_path: Path,
) -> None:
    """``channel_health`` every second: its runs (counted in ``job_runs`` by whichever process
    ran it) grow by one per period — not one per process — over a window of runs waited for
    (against the time their own timestamps span, so a slow machine's late runs only make the
    count smaller); when its process is killed another takes it on, at the same period."""
    srv = _start(tmp_path, CONVERGER_HEALTH_INTERVAL="1")
    db = srv.data_dir
    try:
        async def runs_reach(n: int) -> bool:
            job = _job(db, "channel_health")
            return job is not None and job[0] >= n

        await _until(lambda: runs_reach(1), 20, "the health job never ran")
        first = _job(db, "channel_health")
        assert first is not None
        await _until(lambda: runs_reach(first[0] + 4), 30, "the health job stopped running")
        runs, owner, last = _job(db, "channel_health") or (0, 0, 0.0)
        # Once per period for the whole gateway, not once per process (three would make ~3 a second).
        assert runs - first[0] <= (last - first[2]) / 1.0 + 1, (runs - first[0], last - first[2])
        assert owner == first[1]
        leader: dict[str, Any] = srv.readiness()["checks"]["workers"]
        assert leader["leader"] == owner

        os.kill(owner, signal.SIGKILL)
        killed_at = time.monotonic()

        async def moved() -> bool:
            job = _job(db, "channel_health")
            return job is not None and job[1] != owner

        await _until(moved, 20, "the scheduler did not move to another process")
        print(f"moved after {time.monotonic() - killed_at:.2f}s")
        after, new_owner, since = _job(db, "channel_health") or (0, 0, 0.0)
        assert new_owner in {w["pid"] for w in srv.workers()}
        await _until(lambda: runs_reach(after + 3), 30, "the job stopped after it moved")
        later, still, until = _job(db, "channel_health") or (0, 0, 0.0)
        assert still == new_owner
        assert later - after <= (until - since) / 1.0 + 1, (later - after, until - since)  # its period
    finally:
        srv.stop(timeout=40)


async def test_a_stuck_worker_is_killed_and_restarted_while_the_others_serve(
    tmp_path: Path, spread: aiohttp.ClientSession
) -> None:
    srv = _start(tmp_path, CONVERGER_WORKER_STUCK_AFTER="3")
    try:
        api = Api(spread, srv.url)
        s = await api.setup("stuck")
        conv, key = s["conversation"]["id"], s["api_key"]
        victim = next(w for w in srv.workers() if w["slot"] == 2)
        os.kill(victim["pid"], signal.SIGSTOP)  # its event loop no longer runs
        ids = []
        for i in range(30):  # fresh connections: the stopped process accepts none of them
            ids.append((await api.post_activity(conv, key, text=f"s{i}"))["id"])

        async def restarted() -> bool:
            slots = {w["slot"]: w["pid"] for w in srv.workers()}
            return slots.get(2) not in (None, victim["pid"]) and srv.readiness()["status"] == "ok"

        await _until(restarted, 60, "the stuck worker was not replaced")
        assert f"worker 2 (pid {victim['pid']}) is stuck" in srv.log()
        listed = await api.ok("GET", f"/api/v1/conversations/{conv}/activities",
                              headers={"x-api-key": key})
        assert [a["id"] for a in listed["data"]] == ids
    finally:
        srv.stop(timeout=40)


@sqlite_only("the database file is made unopenable under the running workers; a PostgreSQL "
             "that cannot be reached is tests/integration/postgres/test_postgres.py's")
async def test_a_worker_that_cannot_open_the_database_is_retried_while_the_others_serve(
    tmp_path: Path, spread: aiohttp.ClientSession
) -> None:
    """The database path stops being openable (a directory stands where the file was: every
    new open fails, as after a permissions or mount mistake) while the running workers keep
    the file they opened. A worker killed then cannot start: one clear line per attempt, the
    supervisor retries it with a growing delay, the others keep taking posts, and once the
    file is back the worker serves again — with every accepted post stored."""
    srv = _start(tmp_path)
    db = srv.data_dir / "converger.db"
    away = db.with_name("moved-away.db")
    try:
        api = Api(spread, srv.url)
        s = await api.setup("noopen")
        conv, key = s["conversation"]["id"], s["api_key"]
        # (The serving processes opened their read connections at start: store/db.py.)
        victim = next(w for w in srv.workers() if w["slot"] == 1)
        db.rename(away)
        db.mkdir()
        os.kill(victim["pid"], signal.SIGKILL)
        async def refused() -> bool:
            return "cannot open the database" in srv.log_path.read_text(errors="replace")

        await _until(refused, 120, "the worker never reported the failed open")
        # The others keep taking posts while it cannot start.
        ids = [(await api.post_activity(conv, key, text=f"n{i}"))["id"] for i in range(20)]

        async def retried() -> bool:  # two failed starts, each reported by the supervisor
            return srv.log_path.read_text(errors="replace").count("(exit status 3)") >= 2

        await _until(retried, 120, "the supervisor did not retry the worker")
        log = srv.log_path.read_text(errors="replace")
        after = log[log.index(f"worker 1 (pid {victim['pid']}) died"):]
        failed = [ln for ln in after.splitlines() if "cannot open the database" in ln]
        assert all(str(db) in ln for ln in failed), failed
        assert "exit status 3" in after and "restarting it in" in after  # with a growing delay
        assert "Traceback" not in after

        db.rmdir()
        away.rename(db)

        async def back() -> bool:
            slots = {w["slot"]: w["pid"] for w in srv.workers()}
            return len(slots) == WORKERS and slots.get(1) != victim["pid"] \
                and srv.readiness()["status"] == "ok"

        await _until(back, 120, "the worker did not come back once the database was there")
        listed = await api.ok("GET", f"/api/v1/conversations/{conv}/activities",
                              headers={"x-api-key": key})
        assert [a["id"] for a in listed["data"]] == ids
    finally:
        if db.is_dir():
            db.rmdir()
            away.rename(db)
        srv.stop(timeout=40)


@sqlite_only("SQLite's page cap stands in for a full file system (PostgreSQL's own disk is "
             "the operator's, docs/scaling.md)")
async def test_a_full_disk_is_507_from_every_worker_and_writes_come_back(
    tmp_path: Path, spread: aiohttp.ClientSession
) -> None:
    """The database cannot grow (SQLite's page cap stands in for a full file system): every
    process refuses writes with 507 storage_full, reads go on, no worker is taken for stuck or
    restarted, and once space comes back every process writes again; what was accepted before
    is all there."""
    srv = _start(tmp_path, CONVERGER_DB_MAX_PAGES="600")
    try:
        api = Api(spread, srv.url)
        keep = await api.setup("keep")
        filler = await api.setup("filler")
        kept = [(await api.post_activity(keep["conversation"]["id"], keep["api_key"],
                                         text=f"kept {i}"))["id"] for i in range(6)]
        pids = {w["slot"]: w["pid"] for w in srv.workers()}
        path = f"/api/v1/conversations/{filler['conversation']['id']}/activities"
        status = 201
        for i in range(600):
            status, body, _ = await api.call("POST", path, json={"text": f"{i} " + "x" * 8000},
                                             headers={"x-api-key": filler["api_key"]})
            if status != 201:
                break
        assert status == 507, (status, body)

        keep_path = f"/api/v1/conversations/{keep['conversation']['id']}/activities"
        refused_by: set[int] = set()
        deadline = time.monotonic() + 30
        # Fresh connections, until every process has answered one (which process accepts a
        # connection is the kernel's choice: asked until each did, not a fixed number of times).
        while refused_by != set(pids.values()) and time.monotonic() < deadline:
            async with spread.post(f"{srv.url}{keep_path}", json={"text": "y" * 9000},
                                   headers={"x-api-key": keep["api_key"]}) as r:
                assert r.status == 507 and (await r.json())["code"] == "storage_full"
                refused_by.add(int(r.headers["x-converger-worker"]))
        assert refused_by == set(pids.values()), "not every process answered 507"
        listed = await api.ok("GET", keep_path, headers={"x-api-key": keep["api_key"]})
        assert [a["id"] for a in listed["data"]] == kept

        await api.ok("DELETE", f"/api/admin/tenants/{filler['tenant']['id']}", 204, headers=api.admin)
        written_by: set[int] = set()
        deadline, i = time.monotonic() + 30, 0
        while written_by != set(pids.values()) and time.monotonic() < deadline:
            async with spread.post(f"{srv.url}{keep_path}", json={"text": f"back {i}"},
                                   headers={"x-api-key": keep["api_key"]}) as r:
                assert r.status == 201, await r.text()
                written_by.add(int(r.headers["x-converger-worker"]))
            i += 1
        assert written_by == set(pids.values())
        assert {w["slot"]: w["pid"] for w in srv.workers()} == pids  # nobody was restarted
        log = srv.log_path.read_text(errors="replace")
        assert "Traceback" not in log and "storage_full" in log
        assert "is stuck" not in log and "died" not in log
    finally:
        srv.stop(timeout=40)


@sqlite_only("Litestream replicates the SQLite file")
async def test_every_worker_reports_the_leaders_litestream_and_the_report_moves_with_it(
    tmp_path: Path, spread: aiohttp.ClientSession
) -> None:
    """Litestream runs in the leader process only; /readyz, answered by whichever process the
    connection reaches, shows its state from every one of them — and after the leader is
    killed, the new leader's Litestream."""
    srv = _start(tmp_path, CONVERGER_REPLICA_URL=f"file://{tmp_path / 'replica'}")
    try:
        async def every_worker_reports(than: int | None) -> dict[int, dict[str, Any]]:
            seen: dict[int, dict[str, Any]] = {}

            async def all_running() -> bool:
                async with spread.get(f"{srv.url}/readyz") as r:
                    body = await r.json()
                    check = body["checks"]["replication"]
                    if check["state"] == "running" and check["pid"] != than:
                        seen[int(r.headers["x-converger-worker"])] = check
                    else:
                        seen.pop(int(r.headers["x-converger-worker"]), None)
                return len(seen) == WORKERS

            await _until(all_running, 30, f"not every process reports a running Litestream: {seen}")
            return seen

        seen = await every_worker_reports(None)
        litestream = {c["pid"] for c in seen.values()}
        assert len(litestream) == 1, f"one Litestream for the gateway, reported by all: {seen}"
        leader = srv.readiness()["checks"]["workers"]["leader"]
        assert leader in seen
        assert all(c.get("ok") for c in seen.values())

        os.kill(leader, signal.SIGKILL)
        moved = await every_worker_reports(litestream.pop())
        assert len({c["pid"] for c in moved.values()}) == 1
        assert leader not in moved
    finally:
        srv.stop(timeout=40)
