"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary directory,
``pg_ctl start`` on a free loopback port, one database per server, ``pg_ctl stop`` at the end.

The binaries come from ``pg_config --bindir`` (Debian's ``postgresql`` package, which
tests/setup.sh installs when missing), else the newest ``/usr/lib/postgresql/*/bin``.
``CONVERGER_TEST_DATABASE=postgres`` makes every :class:`tests.support.server.Server` of the run
use a database of its own in one such cluster (started at first use, stopped when the test process
ends; one per pytest-xdist worker) instead of its SQLite file. A server's database is a copy of a
template every migration was applied to once per cluster (``CREATE DATABASE … TEMPLATE``, a file
copy: ~0.15 s where running the migrations took ~1 s per server); the store's unit tests get an
empty one and run the migrations themselves.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

MODE = os.environ.get("CONVERGER_TEST_DATABASE", "sqlite").strip().lower()


def enabled() -> bool:
    """The run's servers use PostgreSQL (``CONVERGER_TEST_DATABASE=postgres``)."""
    return MODE in ("postgres", "postgresql", "pg")


def bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise RuntimeError("PostgreSQL's initdb/pg_ctl not found: run `bash tests/setup.sh` "
                       "(it installs Debian's postgresql package)")


def _free_port() -> int:
    """A port from this pytest worker's range (tests/support/server.py): outside the ephemeral
    range, so no client connection takes it before PostgreSQL binds it."""
    from tests.support.server import free_port

    return free_port()


class Cluster:
    """One ``initdb``'d cluster in a temporary directory, listening on 127.0.0.1 only."""

    USER = "converger"

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="converger-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.bin = bindir()
        self._run_as: tuple[int, int] | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as `nobody`
            nobody = pwd.getpwnam("nobody")
            self._run_as = (nobody.pw_uid, nobody.pw_gid)
        self.started = False
        # Where it listens (tests/support/netns.py adds the host ends of its veth pairs) and whom
        # it lets in without a password besides loopback (pg_hba.conf lines).
        self.listen = ["127.0.0.1"]
        self.hba: list[str] = []
        self._template_lock = threading.Lock()
        self._template_ready = False

    def _cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        def demote() -> None:
            if self._run_as is not None:
                os.setgid(self._run_as[1])
                os.setuid(self._run_as[0])

        return subprocess.run(list(args), capture_output=True, text=True, check=check,
                              preexec_fn=demote if self._run_as else None, cwd=self.root,
                              stdin=subprocess.DEVNULL)

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            os.chown(self.root, *self._run_as)
        self._cmd(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.USER,
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        if self.hba:
            with open(self.data / "pg_hba.conf", "a") as f:
                f.write("".join(line + "\n" for line in self.hba))
        return self.start_again()

    def start_again(self) -> Cluster:
        """``pg_ctl start`` on the cluster made by :meth:`start` (after :meth:`stop`)."""
        # fsync off: the machine does not crash under a test, only PostgreSQL may (stop -m
        # immediate), and then the OS still has what it wrote. synchronous_commit stays on: a
        # commit is in the WAL before the client hears of it, as in production.
        opts = (f"-c listen_addresses='{','.join(self.listen)}' -c port={self.port} "
                f"-c unix_socket_directories='{self.root}' -c fsync=off "
                "-c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB")
        for attempt in (1, 2, 3):  # the free port may be taken meanwhile: another one
            try:
                self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                          str(self.root / "postgres.log"), "-o", opts, "-w", "-t", "60", "start")
                break
            except subprocess.CalledProcessError as exc:
                if attempt == 3 or "could not bind" not in self.log():
                    raise RuntimeError(f"pg_ctl start failed: {exc.stderr}\n{self.log()}") from None
                self.port = _free_port()
                opts = re.sub(r"port=\d+", f"port={self.port}", opts)
        self.started = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.started:
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                      check=False)
            self.started = False

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is dropped (a failover, as clients see it)."""
        # -l: the new server's output goes to the log, not to pipes this process would wait on.
        self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "postgres.log"), "-m", "fast", "-w", "restart")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.root / "postgres.log").read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{dbname}"

    TEMPLATE = "converger_migrated"

    def create_database(self, name: str, migrated: bool = False) -> str:
        """``CREATE DATABASE name`` (when it does not exist yet); returns its URL. ``migrated``:
        a copy of a database every migration has been applied to (``CREATE DATABASE … TEMPLATE``,
        a file copy: a tenth of the time of running the migrations for each server), made once
        per cluster."""
        import psycopg

        if migrated:
            with self._template_lock:
                if not self._template_ready:
                    self._make_template()
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                template = f' TEMPLATE "{self.TEMPLATE}"' if migrated else ""
                conn.execute(f'CREATE DATABASE "{name}"{template}')
        return self.url(name)

    def _make_template(self) -> None:
        from store import migrations
        from store.pg import PgConnection

        url = self.create_database(self.TEMPLATE)
        conn = PgConnection.open(url)
        try:
            migrations.apply(conn)  # type: ignore[arg-type]
        finally:
            conn.close()  # a template must have no connection when it is copied
        self._template_ready = True


_cluster: Cluster | None = None
_lock = threading.Lock()


def cpu() -> float:
    """Seconds of CPU this process's cluster has used so far (0 without one):
    tests/support/cpulog.py."""
    if _cluster is None or not _cluster.started:
        return 0.0
    from tests.support.cpulog import cluster_cpu

    return cluster_cpu(_cluster.data / "postmaster.pid")


def shared() -> Cluster:
    """The test process's cluster, started at first use and destroyed when the process ends."""
    global _cluster
    with _lock:
        if _cluster is None:
            _cluster = Cluster().start()
            atexit.register(_cluster.destroy)
        return _cluster


def database_for(data_dir: Path, migrated: bool = True) -> str:
    """The URL of the database that belongs to a server's data directory (the same one each time
    that server is restarted, a new one for each data directory). ``migrated`` (a server's): made
    with the schema of every migration already in it, as a server's first start would leave it;
    else empty."""
    name = "c_" + hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]
    return shared().create_database(name, migrated=migrated)


def store_database(directory: Path, name: str = "t.db") -> Any:
    """A :class:`store.db.Database` for a unit test (not started): the SQLite file ``name`` in
    ``directory``, or, with ``CONVERGER_TEST_DATABASE=postgres``, a fresh PostgreSQL database of
    that directory's own (:class:`store.pg.PgDatabase`)."""
    if enabled():
        from store.pg import PgDatabase

        return PgDatabase(database_for(Path(directory) / name, migrated=False))
    from store.db import Database

    return Database(Path(directory) / name)


def sqlite_only(reason: str) -> Any:
    """Marks a test of something only the SQLite file has (its WAL, Litestream, a full disk, a
    migration killed midway through the file): skipped when the run's servers use PostgreSQL."""
    import pytest

    return pytest.mark.skipif(enabled(), reason=f"SQLite only: {reason}")


def store_independent(reason: str) -> Any:
    """Marks a test whose subject does not touch the store (a page's layout and accessibility
    in a browser, the binary, a second fuzz run of the same API): it proves the same on either
    store, so `make test` runs it on SQLite and the PostgreSQL run (`make test-postgres`, where
    every server's database is PostgreSQL) skips it rather than pay for it twice. Tests of store
    behaviour — what a page, a route or a worker reads or writes — keep running on both."""
    import pytest

    return pytest.mark.skipif(enabled(), reason=f"store-independent (runs in make test): {reason}")
