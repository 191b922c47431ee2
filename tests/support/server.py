"""Start the real gateway as a subprocess on a free loopback port, and talk to it."""

from __future__ import annotations

import atexit
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import cpulog, postgres

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "cva_test_admin_token_0123456789abcdef"
# CONVERGER_TEST_BINARY=dist/converger runs the suite against the single binary (make test-binary).
COMMAND = ([str(Path(os.environ["CONVERGER_TEST_BINARY"]).resolve())]
           if os.environ.get("CONVERGER_TEST_BINARY") else [sys.executable, "-m", "gateway"])


# Ports handed to servers that bind them later (free_port) come from below the kernel's ephemeral
# range (ip_local_port_range, 32768-60999 by default), where no client connection's local port
# can take one between free_port() and the server's bind, and each pytest-xdist worker has a
# slice of its own, so two workers never hand out the same port (`make test` runs with -n 2).
_PORT_LOW, _PORT_HIGH = 10000, 32000
_next_port: int | None = None


def _port_slice() -> tuple[int, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1… (unset without xdist)
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (_PORT_HIGH - _PORT_LOW) // max(count, 1)
    low = _PORT_LOW + (index % max(count, 1)) * size
    return low, low + size


def free_port() -> int:
    """A loopback TCP port nobody listens on now (a later bind by a server may still race
    another program on the machine picking the same port: Server.start retries then)."""
    global _next_port
    low, high = _port_slice()
    if _next_port is None or not low <= _next_port < high:
        # A random start: concurrent runs (the mutants runner, other checkouts) rarely overlap.
        _next_port = random.randrange(low, high)
    for _ in range(high - low):
        port = _next_port
        _next_port = low + (_next_port + 1 - low) % (high - low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high}")


_SPAWNED: list[subprocess.Popen[bytes]] = []


def track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Have ``reap()`` kill ``proc`` at the end of the session if it is still running."""
    _SPAWNED.append(proc)
    return proc


@atexit.register
def reap() -> None:
    """Whatever a test left running (a failed assertion before its stop, a crash test's
    restart) is killed when the test session ends (tests/conftest.py calls this at session
    finish, in each pytest-xdist worker) and again at exit, so no server outlives the run."""
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


class Server:
    """A real ``converger serve`` process. ``start()`` waits for ``/livez``."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self._port_chosen = port is None  # a port we picked may be taken before the server binds it
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"
        self.nofile: int | None = None  # RLIMIT_NOFILE (soft and hard) for the process, if set
        # Where it listens, and what its command line starts with (tests/support/netns.py: a
        # node in a network namespace of its own runs under `ip netns exec NAME`).
        self.host = "127.0.0.1"
        self.prefix: list[str] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> Server:
        """Spawn and wait for ``/livez`` (and, with worker processes, for every one of them:
        they start side by side, so the wait grows with their number)."""
        for attempt in range(3):
            self.spawn()
            try:
                live = self.wait_live(timeout)
                self._port_chosen = False  # later restarts keep the port clients know
                return live
            except BaseException:
                # A start that fails (or times out under load) must not leave the process running:
                # `with Server(...)` never reaches __exit__ when __enter__ raises.
                self.stop(5)
                # Another process (a parallel test, another suite) may bind the free port we picked
                # between picking and binding; the first start then moves to another free port.
                if (self._port_chosen and attempt < 2 and self.proc is not None
                        and self.proc.returncode not in (None, 0)
                        and "Address already in use" in self.log()):
                    self.repick_ports()
                    continue
                self._port_chosen = False
                raise
        raise AssertionError("unreachable")

    def repick_ports(self) -> None:
        self.port = free_port()

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it (e.g. to kill it during start-up)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "CONVERGER_ADMIN_TOKEN": ADMIN_TOKEN,
            "CONVERGER_SECRET_KEY": "test-secret-key-0123456789",
            "PYTHONUNBUFFERED": "1",
            # Suites share one server and one client IP: per-IP and per-tenant limits are tested
            # on servers of their own (tests/integration/ops), and are off here unless a test sets them.
            "CONVERGER_RATE_LIMIT_TOKENS": "0",
            "CONVERGER_RATE_LIMIT_ACTIVITIES": "0",
            "CONVERGER_RATE_LIMIT_CONVERSATIONS": "0",
            # The providers' stand-ins are aiohttp servers on loopback, which the outbound
            # policy refuses by default (tests/integration/security checks that).
            "CONVERGER_OUTBOUND_ALLOW": "127.0.0.0/8,::1",
            # Likewise the connection caps (tests/integration/security sets them).
            "CONVERGER_MAX_CONNECTIONS_PER_IP": "0",
            "CONVERGER_MAX_SOCKETS_PER_TOKEN": "0",
            # One process unless the run says otherwise: `CONVERGER_WORKERS=2 make test` runs
            # the suite against two worker processes (tests/integration/cluster use 3).
            "CONVERGER_WORKERS": os.environ.get("CONVERGER_WORKERS", "1"),
            **self.extra_env,
        }
        if postgres.enabled() and "CONVERGER_DATABASE_URL" not in self.extra_env \
                and "CONVERGER_DB" not in self.extra_env:
            # CONVERGER_TEST_DATABASE=postgres: a database of this data directory's own in the
            # run's throwaway PostgreSQL cluster (tests/support/postgres.py).
            env["CONVERGER_DATABASE_URL"] = postgres.database_for(self.data_dir)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, *COMMAND, "serve", "--data-dir", str(self.data_dir),
             "--port", str(self.port), "--host", self.host],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=self._limits if self.nofile else None,
        )
        log.close()  # the child holds its own copy
        cpulog.starts += 1
        track(self.proc)
        return self.proc

    def _limits(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def wait_live(self, timeout: float = 20.0) -> Server:
        """Wait until ``/livez`` answers; raise with the log if the process exits first."""
        assert self.proc is not None
        workers = self.extra_env.get("CONVERGER_WORKERS", os.environ.get("CONVERGER_WORKERS", "1"))
        if workers.isdigit() and int(workers) > 1:
            # Each worker imports everything at once, on the same cores as the suite's other
            # servers: under CONVERGER_WORKERS=2 make test on a loaded 2-core machine, 2 × 20 s
            # was not always enough (the suite's start-up errors of 2026-12-07, issue 14).
            timeout *= int(workers) + 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/livez", timeout=1) as r:
                    if r.status == 200 and self._started():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become live in {timeout}s:\n{self.log()}")

    def _started(self) -> bool:
        """Start-up finished (``/readyz`` reports ``startup`` ok; its other checks may fail)."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=5) as r:
                body = r.read()
        except urllib.error.HTTPError as err:  # 503: not ready, but the body says why
            body = err.read()
        checks = json.loads(body).get("checks", {})
        # With several worker processes: every one of them has started (and said so).
        return (bool(checks.get("startup", {"ok": True}).get("ok"))
                and bool(checks.get("workers", {"ok": True}).get("ok")))

    def readiness(self) -> dict[str, Any]:
        """``/readyz``'s body, ready or not."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=5) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))

    def workers(self) -> list[dict[str, Any]]:
        """The worker processes ``/readyz`` lists (slot, pid, sockets, seen_ago); [] with one."""
        return list(self.readiness()["checks"].get("workers", {}).get("workers", []))

    def pids(self) -> list[int]:
        """The server's process and every process under it (its workers, Litestream…)."""
        assert self.proc is not None
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
        return out

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-12000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed, no shutdown hooks."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait for a clean exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def database_env(data_dir: Path) -> dict[str, str]:
    """What a CLI command run on ``data_dir`` needs in its environment to reach the database a
    :class:`Server` on that directory uses (with ``CONVERGER_TEST_DATABASE=postgres``: the URL of
    its PostgreSQL database; else nothing: the SQLite file in the directory)."""
    return {"CONVERGER_DATABASE_URL": postgres.database_for(data_dir)} if postgres.enabled() else {}


def open_database(data_dir: Path, readonly: bool = False) -> Any:
    """A connection to the database of the server on ``data_dir``, for a test to look at (or
    change) what is stored: the SQLite file, or its PostgreSQL database in that mode (a
    :class:`store.pg.PgConnection`: the store's SQL runs on it unchanged). Autocommit."""
    if postgres.enabled():
        from store.pg import PgConnection

        return PgConnection.open(postgres.database_for(data_dir))
    import sqlite3

    path = (Path(data_dir) / "converger.db").resolve()
    return sqlite3.connect(f"file:{path}?mode=ro" if readonly else str(path), uri=readonly,
                           timeout=10, isolation_level=None)


def stored_bytes(data_dir: Path) -> bytes:
    """Everything the server on ``data_dir`` stored, as bytes (to check that a secret is not in
    it): the SQLite file and its WAL, or every row of its PostgreSQL database as text."""
    if postgres.enabled():
        conn = open_database(data_dir)
        try:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
            return b"".join(str(list(map(tuple, conn.execute(f'SELECT * FROM "{t}"')))).encode()
                            for t in tables)
        finally:
            conn.close()
    db = Path(data_dir) / "converger.db"
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())
