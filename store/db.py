"""One writer thread and a pool of readers, bridged to asyncio.

All writes go through :meth:`Database.write`: a single thread owns the write connection and runs
each job inside ``BEGIN IMMEDIATE … COMMIT``. Jobs that arrive together are group-committed: one
transaction for all, in which one failing job rolls back alone (see ``_transact``), and a
burst of requests pays for one fsync. Callers see "database is locked" never, because nobody
else writes. Reads run on a small thread pool of read-only connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .connect import connect

T = TypeVar("T")

_STOP = object()
MAX_BATCH = 256


class Database:
    """Owns the SQLite file: the writer thread, the read pool, and their lifecycles."""

    dialect = "sqlite"  # store.pg.PgDatabase: "postgresql"

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        readers: int = 4,
        checkpoints: bool = True,
        max_pages: int = 0,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.checkpoints = checkpoints
        self.max_pages = max_pages
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self.readers = readers
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="db-read")
        self.commits = 0
        self.replays = 0  # batches run again with a savepoint per job (see _transact)
        self._wlock = _WriteLock(None)
        # Called on the writer thread between two transactions (never inside one); replication
        # sets it to yield the write lock to Litestream when the WAL runs away.
        self.between_batches: Callable[[], None] | None = None
        # Called on the writer thread after each commit that changed rows (several worker
        # processes: wake the feed reader and tell the siblings, gateway/feed.py).
        self.on_commit: Callable[[], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, prepare: Callable[[sqlite3.Connection], Any] | None = None) -> Any:
        """Open the write connection, run ``prepare(conn)`` on it (migrations: they own their
        transactions), then start the writer thread. Returns what ``prepare`` returned."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_conn = connect(
            self.path, synchronous=self.synchronous, checkpoints=self.checkpoints,
            max_pages=self.max_pages,
        )
        try:
            result = prepare(self._write_conn) if prepare is not None else None
        except BaseException:  # e.g. a database from a newer version: leave nothing open
            self._write_conn.close()
            self._write_conn = None
            raise
        self._wlock = _WriteLock(self.path)
        self._writer = threading.Thread(target=self._run_writer, name="db-writer", daemon=True)
        self._writer.start()
        self._open_readers()
        return result

    def _open_readers(self) -> None:
        """Open every read thread's connection now rather than on first use: a file that stops
        being openable later (permissions, a mount) then fails a process that starts after it,
        not the reads of one already serving."""
        barrier = threading.Barrier(self.readers)  # one task per thread: each waits for all

        def open_one() -> None:
            self._reader()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)

        for future in [self._pool.submit(open_one) for _ in range(self.readers)]:
            future.result()

    def close(self) -> None:
        """Finish queued writes, stop the writer, close every connection."""
        if self._writer is not None:
            self._jobs.put(_STOP)
            self._writer.join(timeout=30)
            self._writer = None
        self._pool.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None
        self._wlock.close()

    # -- public API ----------------------------------------------------------------------
    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in a write transaction on the writer thread.

        The returned value is committed when this coroutine returns.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, loop, fut))
        return await fut

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking variant of :meth:`write` for threads outside the event loop (CLI, tests)."""
        done = threading.Event()
        box: dict[str, Any] = {}
        self._jobs.put((fn, args, None, (done, box)))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on a read-only connection in the read pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run_read, fn, args)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._run_read(fn, args)

    # -- internals -----------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True, synchronous=self.synchronous)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._reader()
        # An explicit read transaction gives the function one consistent snapshot.
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    def _run_writer(self) -> None:
        conn = self._write_conn
        assert conn is not None
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            batch = [job]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(conn, batch)
            if stop:
                return
            if self.between_batches is not None:
                self.between_batches()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        # The write lock file is held from BEGIN to COMMIT: another process's writer sleeps in
        # flock() and the kernel wakes it the moment this one is done (see _WriteLock).
        with self._wlock:
            changed, results = self._transact(conn, batch)
        if changed and self.on_commit is not None:
            self.on_commit()
        self._resolve(results)

    def _transact(
        self, conn: sqlite3.Connection, batch: list[Any], isolate: bool = False,
    ) -> tuple[bool, list[tuple[Any, Any, BaseException | None, Any]]]:
        """One transaction over ``batch``: (whether it committed changes, each job's outcome).

        The jobs run without a savepoint each (two statements per job saved): a job that fails
        without having changed a row leaves the transaction as it found it (SQLite undoes a
        failed statement itself), so the others go on. One that fails after changing rows cannot
        be undone alone: the transaction is rolled back and the batch runs again with a
        savepoint per job (``isolate``). A job may therefore run twice, the first time in a
        transaction that never commits — as on PostgreSQL, whose writer runs a rolled-back
        batch again (store/pg.py)."""
        results: list[tuple[Any, Any, BaseException | None, Any]] = []
        # A job alone in its transaction needs no savepoint to fail alone.
        single = len(batch) == 1
        savepoints = isolate and not single
        changes = conn.total_changes
        try:
            self._begin(conn)
            for fn, args, loop, fut in batch:
                if savepoints:
                    conn.execute("SAVEPOINT job")
                before = conn.total_changes
                try:
                    value = fn(conn, *args)
                except BaseException as exc:  # the job's own failure: roll back only it
                    if single or not conn.in_transaction:
                        # On SQLITE_FULL or an I/O error SQLite may already have rolled the
                        # whole transaction back: then every job of the batch has failed.
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        if single:
                            return False, [(loop, fut, exc, None)]
                        return False, [(lp, f, exc, None) for _, _, lp, f in batch]
                    if savepoints:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    elif conn.total_changes != before:  # its rows cannot be undone alone
                        conn.execute("ROLLBACK")
                        self.replays += 1
                        return self._transact(conn, batch, isolate=True)
                    results.append((loop, fut, exc, None))
                else:
                    if savepoints:
                        conn.execute("RELEASE job")
                    results.append((loop, fut, None, value))
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:  # commit failed (disk full, I/O): every job fails
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return False, [(loop, fut, exc, None) for fn, args, loop, fut in batch]
        return conn.total_changes != changes, results

    def _begin(self, conn: sqlite3.Connection) -> None:
        _begin(conn)

    @staticmethod
    def _resolve(results: list[tuple[Any, Any, BaseException | None, Any]]) -> None:
        by_loop: dict[Any, list[tuple[Any, BaseException | None, Any]]] = {}
        for loop, fut, exc, value in results:
            if loop is None:  # write_sync
                done, box = fut
                if exc is not None:
                    box["error"] = exc
                else:
                    box["value"] = value
                done.set()
            else:
                by_loop.setdefault(loop, []).append((fut, exc, value))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # loop closed during shutdown: nobody is waiting any more
                pass


class _WriteLock:
    """An exclusive ``flock`` on ``<database>-wlock``, held by a writer from BEGIN to COMMIT.

    SQLite's own write lock is enough for correctness, but a process that finds it taken waits in
    SQLite's busy handler, which *sleeps* (1, 2, 5, 10 … 100 ms) between retries: with two worker
    processes writing all the time, each commit then waits milliseconds for a lock that was free
    after microseconds, and the processes end up taking turns with the CPU idle. Waiting in
    ``flock`` instead hands the lock over as soon as it is released (the kernel wakes the
    waiter; the GIL is released while it waits). Writers that don't take it (the CLI, Litestream's
    checkpoints) still meet SQLite's lock and its busy handler, so nothing depends on everyone
    using it. Uncontended, it costs two system calls per transaction. Without a usable lock file
    (a read-only directory), writers fall back to SQLite's lock alone."""

    def __init__(self, db_path: Path | None) -> None:
        self._fd = -1
        if db_path is None:
            return
        try:
            self._fd = os.open(f"{db_path}-wlock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            logging.getLogger("converger.db").warning(
                "no write lock file next to %s (%s): writers wait in SQLite's busy handler", db_path, exc)

    def __enter__(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


BUSY_PATIENCE = 120.0  # seconds the writer waits for another process's write lock


def _begin(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock as long as another process holds it.

    With several worker processes on one file, SQLite's lock serialises their commits;
    ``busy_timeout`` (5 s) usually covers the wait, and past it this keeps waiting instead of
    failing a request with "database is locked"."""
    waited = 0.0
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or waited >= BUSY_PATIENCE:
                raise
            waited += 5.0  # busy_timeout has just waited this long
            if waited == 5.0:
                logging.getLogger("converger.db").warning(
                    "the database write lock has been busy for 5s (another process); waiting")


def _settle(items: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
    for fut, exc, value in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)
