"""A bad environment: an unwritable data directory, a full database, receivers that hang or
never stop talking. Each gives a clear error or is cut off, and the gateway keeps serving.

(A WebSocket client that never reads is dropped by the bounded send queue while 50 others keep
receiving:
tests/integration/realtime/test_fanout.py::test_a_stalled_socket_is_dropped_and_does_not_slow_50_others.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support import postgres
from tests.support import server as support_server
from tests.support.api import Api
from tests.support.server import ROOT, Server, open_database

from .util import deliveries, rss_kib, wait_for

# -- an unwritable data directory ---------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write to: a read-only bind mount as root (root ignores modes),
    mode 0555 otherwise."""
    ro = tmp_path / "ro"
    (ro / "data").mkdir(parents=True)
    if os.geteuid() != 0:
        ro.chmod(0o555)
        (ro / "data").chmod(0o555)
        yield ro / "data"
        (ro / "data").chmod(0o755)
        ro.chmod(0o755)
        return
    if shutil.which("mount") is None:
        pytest.skip("root without mount(8): cannot make a read-only directory")
    bind = subprocess.run(["mount", "--bind", str(ro), str(ro)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount: {bind.stderr.decode().strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
        yield ro / "data"
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_read_only_data_directory_is_refused_in_one_line(read_only_dir: Path) -> None:
    env = {**os.environ, "CONVERGER_SECRET_KEY": "test-secret-key-0123456789"}
    command = getattr(support_server, "COMMAND", [sys.executable, "-m", "gateway"])
    proc = subprocess.run(
        [*command, "serve", "--data-dir", str(read_only_dir), "--port", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not writable" in lines[0] and str(read_only_dir) in lines[0], lines


# -- a full disk (SQLite's page cap stands in for the file system) --------------------------------


@postgres.sqlite_only("SQLite's page cap stands in for a full disk")
async def test_full_database_is_507_reads_go_on_and_writes_come_back(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    srv = Server(tmp_path / "full", env={"CONVERGER_DB_MAX_PAGES": "400"}).start()
    try:
        api = Api(session, srv.url)
        keep = await api.setup("keep")
        filler = await api.setup("filler")
        kept = await api.post_activity(keep["conversation"]["id"], keep["api_key"], text="kept")
        path = f"/api/v1/conversations/{filler['conversation']['id']}/activities"
        status, body, headers = 201, None, {}
        for i in range(400):  # 400 pages × 4 KiB; each post adds > 8 KiB
            status, body, headers = await api.call(
                "POST", path, json={"text": f"{i} " + "x" * 8000},
                headers={"x-api-key": filler["api_key"]})
            if status != 201:
                break
        assert status == 507, (status, body)
        assert headers["content-type"] == "application/problem+json"
        assert body["code"] == "storage_full" and body["status"] == 507
        assert "retry-after" in headers

        # Every writer gets the same answer; readers and the health checks carry on.
        status, body, _ = await api.call(
            "POST", f"/api/v1/conversations/{keep['conversation']['id']}/activities",
            json={"text": "y" * 9000}, headers={"x-api-key": keep["api_key"]})
        assert (status, body["code"]) == (507, "storage_full")
        listed = await api.ok("GET", f"/api/v1/conversations/{keep['conversation']['id']}/activities",
                              headers={"x-api-key": keep["api_key"]})
        assert [a["id"] for a in listed["data"]] == [kept["id"]]
        assert (await api.call("GET", "/livez"))[0] == 200

        # Space comes back (an operator removes the filler tenant): writes work again.
        await api.ok("DELETE", f"/api/admin/tenants/{filler['tenant']['id']}", 204, headers=api.admin)
        again = await api.post_activity(keep["conversation"]["id"], keep["api_key"], text="back")
        assert again["seq"] == kept["seq"] + 1
    finally:
        srv.stop()
    log = srv.log_path.read_text()
    assert "Traceback" not in log  # one line per refused write, no stack traces
    assert "storage_full" in log


# -- receivers that hang, or never stop sending -----------------------------------------------------


class BadReceiver:
    """``/hang`` never answers; ``/endless`` answers 200 and streams a body forever; ``/ok`` 200."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"hang": 0, "endless": 0, "ok": 0, "slow": 0}
        self.answered = 0
        self.release = asyncio.Event()  # /slow answers once the test sets it
        self.slow_ids: list[str] = []  # the webhook-id of every /slow request
        self.streamed = 0
        self.cut_off = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> BadReceiver:
        app = web.Application()
        app.router.add_post("/hang", self._hang)
        app.router.add_post("/endless", self._endless)
        app.router.add_post("/ok", self._ok)
        app.router.add_post("/slow", self._slow)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def _hang(self, request: web.Request) -> web.Response:
        self.calls["hang"] += 1
        await request.read()
        await asyncio.sleep(3600)
        return web.Response()

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        self.calls["endless"] += 1
        await request.read()
        resp = web.StreamResponse(status=200)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"z" * 65_536
        try:
            while True:
                await resp.write(chunk)
                self.streamed += len(chunk)
        except (ConnectionError, RuntimeError):
            self.cut_off += 1  # the gateway hung up
        return resp

    async def _slow(self, request: web.Request) -> web.Response:
        self.calls["slow"] += 1
        self.slow_ids.append(request.headers["webhook-id"])
        await request.read()
        await self.release.wait()
        self.answered += 1
        return web.Response(text="ok")

    async def _ok(self, request: web.Request) -> web.Response:
        self.calls["ok"] += 1
        await request.read()
        return web.Response(text="ok")


@pytest.fixture
async def bad_receiver() -> AsyncIterator[BadReceiver]:
    r = await BadReceiver().start()
    yield r
    assert r._runner is not None
    await r._runner.cleanup()


async def _webhook(api: Api, name: str, url: str) -> dict[str, Any]:
    return await api.setup(name, type="webhook", config={"url": url})


async def test_hanging_and_endless_receivers_are_cut_off_and_others_proceed(
    tmp_path: Path, session: aiohttp.ClientSession, bad_receiver: BadReceiver
) -> None:
    srv = Server(tmp_path / "recv", env={
        "CONVERGER_WEBHOOK_TIMEOUT": "1", "CONVERGER_BACKOFF_SCALE": "0.001",
        "CONVERGER_DELIVERY_CONCURRENCY": "4",
    }).start()
    try:
        api = Api(session, srv.url)
        hang = await _webhook(api, "hang", bad_receiver.url("hang"))
        endless = await _webhook(api, "endless", bad_receiver.url("endless"))
        ok = await _webhook(api, "ok", bad_receiver.url("ok"))
        rss_before = rss_kib(srv.proc.pid)  # type: ignore[union-attr]

        for i in range(3):
            await api.post_activity(hang["conversation"]["id"], hang["api_key"], text=f"h{i}")
        started = time.monotonic()
        for i in range(5):
            await api.post_activity(endless["conversation"]["id"], endless["api_key"], text=f"e{i}")
        for i in range(20):
            await api.post_activity(ok["conversation"]["id"], ok["api_key"], text=f"o{i}")

        async def others_sent() -> bool:
            rows = [*await deliveries(api, channel_id=ok["channel"]["id"]),
                    *await deliveries(api, channel_id=endless["channel"]["id"])]
            return len(rows) == 25 and all(r["status"] == "sent" for r in rows)

        # The endless bodies are cut off at the cap, not read until the 1 s timeout; the ok
        # channel is not held up by the hanging one.
        await wait_for(others_sent, 10, "deliveries to well-behaved receivers held up")
        elapsed = time.monotonic() - started
        assert bad_receiver.cut_off >= 1 and bad_receiver.calls["endless"] == 5

        async def hang_retried() -> bool:
            rows = await deliveries(api, channel_id=hang["channel"]["id"])
            return len(rows) == 3 and all(r["attempts"] >= 2 for r in rows)

        await wait_for(hang_retried, 15, "hanging deliveries not timed out and retried")
        rows = await deliveries(api, channel_id=hang["channel"]["id"])
        assert all("timeout" in (r["last_error"] or "") for r in rows), rows
        assert all(r["status"] in ("pending", "failed") for r in rows)
        growth = rss_kib(srv.proc.pid) - rss_before  # type: ignore[union-attr]
        print(f"others done in {elapsed:.2f}s; streamed {bad_receiver.streamed >> 20} MiB "
              f"to the gateway, RSS growth {growth >> 10} MiB")
        assert growth < 64 * 1024, f"RSS grew {growth} KiB"
        assert (await api.call("GET", "/livez"))[0] == 200
    finally:
        srv.stop()


@postgres.sqlite_only("the SQLite file that cannot grow (PostgreSQL going away: "
                      "tests/integration/postgres)")
async def test_write_errors_are_503_and_writes_resume_when_the_file_can_grow(
    tmp_path: Path, session: aiohttp.ClientSession, bad_receiver: BadReceiver
) -> None:
    """A file-size limit on the server process (RLIMIT_FSIZE, set from outside with prlimit):
    SQLite's writes fail with an I/O error, as on a device that refuses writes. Deliveries in
    flight then cannot record their outcome either: one log line, no traceback; they stay
    leased, and once their lease ends (15 s here, longer than an attempt may take) the running
    server sends them again with the same ``webhook-id``, and records them sent."""
    import resource

    srv = Server(tmp_path / "fsize", env={"CONVERGER_DELIVERY_LEASE": "15",
                                          "CONVERGER_LEASE_RESCUE_INTERVAL": "0.5"}).start()
    try:
        assert srv.proc is not None
        api = Api(session, srv.url)
        s = await api.setup("fsize")
        hook = await _webhook(api, "slow", bad_receiver.url("slow"))
        conv = s["conversation"]["id"]
        first = await api.post_activity(conv, s["api_key"], text="first")
        for i in range(3):  # held by the receiver until the limit is reached
            await api.post_activity(hook["conversation"]["id"], hook["api_key"], text=f"s{i}")

        async def in_flight() -> bool:
            return bad_receiver.calls["slow"] >= 3

        await wait_for(in_flight, 10, "deliveries not sent")
        biggest = max(p.stat().st_size for p in srv.data_dir.iterdir() if p.is_file())
        # No file may grow any more (a headroom would leave room for the deliveries' small
        # outcome updates, or let a checkpoint reset the WAL) — in the server and in its worker
        # processes, when it has some.
        for pid in srv.pids():
            _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (biggest, hard))
        status, body, _ = await api.call(
            "POST", f"/api/v1/conversations/{conv}/activities",
            json={"text": "z" * 60_000}, headers={"x-api-key": s["api_key"]})
        assert (status, body["code"]) == (503, "storage_unavailable"), (status, body)
        listed = await api.ok("GET", f"/api/v1/conversations/{conv}/activities",
                              headers={"x-api-key": s["api_key"]})
        assert listed["data"][0]["id"] == first["id"]
        bad_receiver.release.set()  # the answers come now: their outcomes cannot be written

        async def outcomes_refused() -> bool:  # (on a slow machine a lease may already have
            # run out and its delivery been sent again: those attempts answer now too)
            return (bad_receiver.answered == bad_receiver.calls["slow"] >= 3
                    and "outcomes not recorded" in srv.log_path.read_text())

        await wait_for(outcomes_refused, 10, "delivery outcomes were written despite the limit")
        for pid in srv.pids():
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
        again = await api.post_activity(conv, s["api_key"], text="again")
        assert again["seq"] == len(listed["data"]) + 1

        # At least once: the attempts whose outcome was lost are made again when their lease
        # ends — same webhook-ids — and this time recorded.
        async def recorded() -> bool:
            rows = await deliveries(api, channel_id=hook["channel"]["id"])
            return len(rows) == 3 and all(r["status"] == "sent" for r in rows)

        await wait_for(recorded, 60, "deliveries whose outcome was lost were not sent again")
        rows = await deliveries(api, channel_id=hook["channel"]["id"])
        ids = {r["id"] for r in rows}
        sent = bad_receiver.slow_ids
        assert set(sent) == ids and all(sent.count(i) >= 2 for i in ids), sent
        assert all(r["attempts"] == 1 for r in rows)  # only the recorded attempt counts
    finally:
        srv.stop()
    assert "Traceback" not in srv.log_path.read_text()


# -- any other database error -------------------------------------------------------------------


async def test_any_other_database_error_stays_a_logged_500(
    fresh_server: Server, session: aiohttp.ClientSession
) -> None:
    """Not every SQLite error is the storage's: a schema changed under the running server (here
    the audit table renamed by an outside connection — SQLITE_ERROR "no such table") is a
    ``500`` problem+json ``internal_error`` with a logged traceback, not a 503/507; a write
    that hit it left nothing; once the table is back, the same requests work."""
    srv = fresh_server.start()
    api = Api(session, srv.url)

    def rename(old: str, new: str) -> None:
        with open_database(srv.data_dir) as conn:  # its SQLite file, or its PostgreSQL database
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")

    rename("audit_logs", "audit_logs_away")
    try:
        for method, path, body in (("GET", "/api/admin/audit", None),
                                   ("POST", "/api/admin/tenants", {"name": "never-stored"})):
            status, problem, headers = await api.call(method, path, json=body, headers=api.admin)
            assert status == 500, (path, problem)
            assert headers["content-type"].startswith("application/problem+json")
            assert problem["code"] == "internal_error" and "no such table" not in str(problem)
            assert "Retry-After" not in headers
    finally:
        rename("audit_logs_away", "audit_logs")
    log = srv.log()
    assert "unhandled error on POST /api/admin/tenants" in log
    assert "no such table" in log or "audit_logs\\\" does not exist" in log  # SQLite, PostgreSQL
    assert "Traceback" in log and "storage:" not in log
    tenants = (await api.ok("GET", "/api/admin/tenants?limit=100", headers=api.admin))["data"]
    assert "never-stored" not in [t["name"] for t in tenants]  # rolled back with its audit row
    await api.ok("POST", "/api/admin/tenants", 201, json={"name": "stored"}, headers=api.admin)
    await api.ok("GET", "/api/admin/audit", headers=api.admin)
