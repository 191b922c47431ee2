"""``converger serve --workers N``: the main process binds the port once, starts N worker
processes that all accept on that one socket, restarts a worker that dies or hangs, and stops
them all on SIGTERM/SIGINT.

Why our own supervisor rather than Sanic's worker manager: a frozen (PyInstaller) build must not
re-run itself through ``multiprocessing`` (STYLE.md, "Gotchas"), and a worker here is an
ordinary child process — the same executable with ``CONVERGER_WORKER_SLOT`` set — started
with ``subprocess`` and handed the listening socket by file descriptor. The same code runs from
source and from the single binary.

What the supervisor does not do: it never opens a socket to a client and holds no state a
worker needs — the workers coordinate through the database (docs/architecture.md). Before the
first worker starts it prepares what must happen once: the secret key file, the replica
restore, the migrations.

A worker is restarted at once after it ran for a while, and with a growing delay (up to
``MAX_BACKOFF`` s) while it keeps dying at start-up (e.g. it cannot open the database): one line
per death names the slot, pid and exit status, and the other workers keep serving. A worker
whose event loop has not touched its heartbeat file for ``CONVERGER_WORKER_STUCK_AFTER`` seconds
(20) is killed and restarted. Each worker dies with the supervisor (``PR_SET_PDEATHSIG``), so a crashed supervisor
leaves nothing holding the port.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from .cluster import ENV_PARENT, heartbeat_path, notify_path
from .config import Settings

log = logging.getLogger("converger.supervisor")

ENV_SLOT = "CONVERGER_WORKER_SLOT"
ENV_FD = "CONVERGER_WORKER_FD"
ENV_SIZE = "CONVERGER_WORKER_COUNT"
ENV_RUN_DIR = "CONVERGER_RUN_DIR"
ENV_SETTINGS = "CONVERGER_WORKER_SETTINGS"

START_TIMEOUT = 120.0  # seconds a starting worker has to write its first heartbeat
STABLE_AFTER = 10.0  # a worker that ran this long is restarted without delay
MAX_BACKOFF = 30.0
STOP_TIMEOUT = 25.0  # a worker's own graceful shutdown takes up to ~15 s
CHECK_EVERY = 1.0  # the supervisor's own wake-up (one stat per worker): no measurable CPU


def worker_command() -> list[str]:
    """This same program, as a worker: the frozen binary itself, or ``python -m gateway``."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "serve"]
    return [sys.executable, "-m", "gateway", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """The one listening socket every worker accepts on (inherited by file descriptor)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        # A restarted gateway can bind while the workers of a crashed one are still exiting.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> Any:
    """preexec_fn: the kernel SIGKILLs the worker when the supervisor dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: float | None = 0.0  # due to start now


class Supervisor:
    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.slots = [Slot(i) for i in range(count)]
        self.stopping = False
        self.run_dir = Path(tempfile.mkdtemp(prefix="converger-"))
        self.metrics_dir = self.run_dir / "metrics"
        self.metrics_dir.mkdir()
        self.sock: socket.socket | None = None
        self.setup_token = secrets.token_urlsafe(24)

    # -- workers ------------------------------------------------------------------------------
    def _env(self, slot: int) -> dict[str, str]:
        assert self.sock is not None
        return {
            **os.environ,
            ENV_SLOT: str(slot),
            ENV_FD: str(self.sock.fileno()),
            ENV_SIZE: str(self.count),
            ENV_RUN_DIR: str(self.run_dir),
            ENV_PARENT: str(os.getpid()),
            ENV_SETTINGS: msgspec.json.encode(self.settings).decode(),
            # One first-admin setup link for every worker (gateway/web).
            "CONVERGER_SETUP_TOKEN": self.setup_token,
            # prometheus-client's multiprocess mode reads this at import time.
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }

    def spawn(self, slot: Slot) -> None:
        assert self.sock is not None
        heartbeat_path(self.run_dir, slot.index).unlink(missing_ok=True)
        slot.proc = subprocess.Popen(
            worker_command(), env=self._env(slot.index), pass_fds=(self.sock.fileno(),),
            preexec_fn=_die_with_parent(),
        )
        slot.started = time.monotonic()
        slot.restart_at = None
        log.info("worker %d started (pid %d)", slot.index, slot.proc.pid)

    def _reap(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            proc = slot.proc
            if proc is None or proc.poll() is None:
                continue
            code = proc.returncode
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            slot.proc = None
            self._forget_metrics(proc.pid)
            self._tell_all(b"L")  # its leases: the others may take them now
            if self.stopping:
                continue
            ran = now - slot.started
            slot.failures = 0 if ran >= STABLE_AFTER else slot.failures + 1
            delay = 0.0 if slot.failures == 0 else min(MAX_BACKOFF, 0.5 * 2 ** (slot.failures - 1))
            slot.restart_at = now + delay
            log.error("worker %d (pid %d) died after %.1fs (%s); restarting it%s", slot.index,
                      proc.pid, ran, how, f" in {delay:.1f}s" if delay else "")

    def _check_stuck(self) -> None:
        """Kill a worker whose event loop stopped ticking (its heartbeat file is touched every
        2 s once it serves), or that never started serving."""
        now, wall = time.monotonic(), time.time()
        stuck_after = self.settings.worker_stuck_after
        for slot in self.slots:
            proc = slot.proc
            if proc is None:
                continue
            try:
                age = wall - heartbeat_path(self.run_dir, slot.index).stat().st_mtime
                limit = stuck_after
            except FileNotFoundError:  # still starting
                age, limit = now - slot.started, START_TIMEOUT
            if age > limit:
                log.error("worker %d (pid %d) is stuck: no heartbeat for %.0fs; killing it",
                          slot.index, proc.pid, age)
                proc.kill()

    def _forget_metrics(self, pid: int) -> None:
        try:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, str(self.metrics_dir))
        except Exception:  # metrics are not worth a supervisor crash
            log.exception("could not clear the metrics of pid %d", pid)

    def _tell_all(self, message: bytes) -> None:
        """A wake-up datagram to every worker (e.g. ``L``: a lease may be free now)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            for slot in self.slots:
                try:
                    s.sendto(message, str(notify_path(self.run_dir, slot.index)))
                except OSError:
                    pass

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        self.sock = bind(self.settings.host, self.settings.port)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)

        def on_stop(signum: int, frame: Any) -> None:
            if not self.stopping:
                log.info("%s: stopping %d workers", signal.Signals(signum).name, self.count)
            self.stopping = True

        handlers = {s: signal.signal(s, on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        old_chld = signal.signal(signal.SIGCHLD, lambda s, f: None)  # only wakes the select
        log.info("converger listening on http://%s:%s with %d workers (run dir %s)",
                 self.settings.host, self.settings.port, self.count, self.run_dir)
        try:
            while not self.stopping:
                now = time.monotonic()
                for slot in self.slots:
                    if slot.proc is None and slot.restart_at is not None and slot.restart_at <= now:
                        self.spawn(slot)
                due = [s.restart_at for s in self.slots if s.restart_at is not None]
                timeout = max(0.0, min([CHECK_EVERY, *(d - now for d in due)]))
                select.select([wake_r], [], [], timeout)
                try:
                    while wake_r.recv(512):
                        pass
                except BlockingIOError:
                    pass
                self._reap()
                self._check_stuck()
            self._stop_all()
        finally:
            signal.set_wakeup_fd(old_fd)
            signal.signal(signal.SIGCHLD, old_chld)
            for s, h in handlers.items():
                signal.signal(s, h)
            wake_r.close()
            wake_w.close()
            self.sock.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)
        log.info("converger stopped")
        return 0

    def _stop_all(self) -> None:
        live = [s.proc for s in self.slots if s.proc is not None]
        for proc in live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in %.0fs; killing it", proc.pid, STOP_TIMEOUT)
                proc.kill()
                proc.wait(5)


def prepare(settings: Settings) -> None:
    """What must happen once, before any worker opens the database: the generated secret key,
    the restore from the replica (when the file is missing), the migrations."""
    from . import replication
    from .app import open_database
    from .crypto import secret_key

    secret_key(settings)
    if settings.replica_url:
        code, out = replication.restore(settings, if_missing=True)
        if code != 0:
            raise RuntimeError(f"restore failed: {out}")
    db, applied = open_database(settings)
    try:
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        from store import leases

        db.write_sync(leases.forget_workers, 0)  # heartbeats of a previous run
    finally:
        db.close()


def supervise(settings: Settings, count: int) -> int:
    prepare(settings)
    return Supervisor(settings, count).run()


def worker_identity() -> tuple[int, int, Path, int] | None:
    """``(slot, count, run_dir, listening fd)`` when this process is a supervised worker."""
    slot = os.environ.get(ENV_SLOT)
    if slot is None:
        return None
    return (int(slot), int(os.environ[ENV_SIZE]), Path(os.environ[ENV_RUN_DIR]),
            int(os.environ[ENV_FD]))


def worker_settings() -> Settings:
    return msgspec.json.decode(os.environ[ENV_SETTINGS], type=Settings)
