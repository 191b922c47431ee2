"""The PostgreSQL backend (``CONVERGER_DATABASE_URL=postgresql://…``), with psycopg 3.

The same store functions run on it as on SQLite: :class:`PgConnection` gives a psycopg
connection the face of a ``sqlite3.Connection`` that the store uses (``execute`` returning a
cursor of rows readable by index and by name, ``executemany``, ``in_transaction``,
``total_changes``), and passes every statement through :func:`store.dialect.translate`.
:class:`PgDatabase` is :class:`store.db.Database` with PostgreSQL connections under it: the
same writer thread and group commit (each job in a SAVEPOINT of one transaction), reads on a
pool of reader threads, each with its own connection.

The driver was chosen by measurement (docs/scaling.md): psycopg 3 and asyncpg cost the same per
transaction on loopback here, and psycopg's synchronous connections fit the store as it is
(synchronous functions run on the writer and reader threads), where asyncpg would need every
store function written again as a coroutine.

Errors: a constraint violation is a :class:`PgIntegrityError` and a server that cannot be
reached, restarts or drops the connection a :class:`StorageUnavailable` — subclasses of
``sqlite3.IntegrityError`` and ``sqlite3.OperationalError``, so that the HTTP layer maps them as
it maps SQLite's (409 ``constraint_failed``, 503 ``storage_unavailable``). A broken connection is
replaced at the next use, so the gateway recovers without a restart when PostgreSQL comes back.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from . import dialect
from .db import Database

T = TypeVar("T")
log = logging.getLogger("converger.db")

MIGRATIONS_TABLE = "schema_migrations"
# pg_advisory_lock key held while migrations run (several nodes may start at once).
MIGRATION_LOCK = 0x636F6E76  # "conv"


class PgIntegrityError(sqlite3.IntegrityError):
    """A PostgreSQL constraint violation (unique, foreign key, check, not null)."""

    sqlstate: str | None = None


class StorageUnavailable(sqlite3.OperationalError):
    """PostgreSQL cannot be reached or dropped the connection: nothing of the transaction was
    committed (or, after a connection lost during COMMIT whose outcome could not be learnt,
    nothing is promised: see :meth:`PgDatabase._run_batch`). ``sqlite_errorname`` says so in
    SQLite's terms (gateway/errors.py: 503 ``storage_unavailable``)."""

    sqlite_errorname = "SQLITE_IOERR_POSTGRESQL"
    sqlstate: str | None = None


class PgError(sqlite3.OperationalError):
    """Any other error PostgreSQL reported for a statement."""

    sqlstate: str | None = None


# Write transactions that fail with one of these are rolled back by PostgreSQL and run again
# (PgDatabase._run_batch): serialization failure, deadlock, and the server shutting down or not
# yet accepting connections (a restart, a failover). A dropped connection (no SQLSTATE) too.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})
#: Attempts of one write transaction, and the backoff between them: full jitter,
#: ``uniform(0, min(RETRY_CAP, RETRY_BASE * 2**n))`` seconds.
RETRY_ATTEMPTS = 6
RETRY_BASE = 0.05
RETRY_CAP = 1.0
#: How long the writer keeps asking for the outcome of a COMMIT whose connection was lost.
OUTCOME_PATIENCE = 10.0


def transient(exc: BaseException) -> bool:
    """Whether a write transaction that failed with ``exc`` was rolled back by PostgreSQL for a
    reason that may be gone at the next attempt (see :data:`TRANSIENT_SQLSTATES`)."""
    if isinstance(exc, StorageUnavailable):
        return True
    return isinstance(exc, PgError) and exc.sqlstate in TRANSIENT_SQLSTATES


def redact(url: str) -> str:
    """``url`` without its password (for logs and messages)."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the extra is installed by `make setup`
        raise RuntimeError("PostgreSQL needs the psycopg driver: pip install 'converger[postgresql]'"
                           ) from exc
    return psycopg


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    desc = cursor.description
    if desc is None:
        return tuple
    cls = dialect.row_class(tuple(d.name for d in desc))
    return cls


def _numeric_loader() -> Any:
    """``numeric`` (what ``sum`` of integers and divisions give) as int or float, like SQLite."""
    from psycopg.types.numeric import NumericLoader

    class Loader(NumericLoader):
        def load(self, data: Any) -> Any:
            value = super().load(data)
            return int(value) if value == value.to_integral_value() else float(value)

    return Loader


def _converted(exc: BaseException) -> BaseException:
    psycopg = _psycopg()
    said = " ".join(str(exc).split())  # libpq's messages span lines: one line for the logs
    out: PgIntegrityError | StorageUnavailable | PgError
    if isinstance(exc, psycopg.errors.IntegrityError):
        out = PgIntegrityError(said)
    elif isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        out = PgError(said)  # the transaction is rolled back; the connection is fine
    elif isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown
                    | psycopg.errors.CannotConnectNow | psycopg.InterfaceError):
        out = StorageUnavailable(f"PostgreSQL unavailable: {said}")
    elif isinstance(exc, psycopg.Error):
        out = PgError(said)
    else:
        return exc
    out.sqlstate = getattr(exc, "sqlstate", None)
    return out


class Cursor:
    """The result of :meth:`PgConnection.execute` (the psycopg cursor, errors converted)."""

    __slots__ = ("_cur",)

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    @property
    def description(self) -> Any:
        return self._cur.description

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall()) if self._cur.description is not None else []

    def fetchmany(self, size: int) -> list[Any]:
        return list(self._cur.fetchmany(size))

    def __iter__(self) -> Any:
        return iter(self.fetchall())

    def close(self) -> None:
        self._cur.close()


class PgConnection:
    """A psycopg connection with the face of the ``sqlite3.Connection`` the store uses."""

    dialect = dialect.POSTGRESQL

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.total_changes = 0

    @classmethod
    def open(cls, url: str, *, connect_timeout: float = 5.0, application_name: str = "converger"
             ) -> PgConnection:
        psycopg = _psycopg()
        try:
            raw = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout)),
                                  application_name=application_name)
        except psycopg.Error as exc:
            raise _converted(exc) from None
        raw.row_factory = _row_factory
        raw.adapters.register_loader("numeric", _numeric_loader())
        return cls(raw)

    def translate(self, sql: str, with_params: bool) -> str:
        return dialect.translate(sql, with_params)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Cursor:
        values = dialect.params(list(params) if not isinstance(params, list | tuple) else params)
        query = self.translate(sql, values is not None)
        try:
            cur = self.raw.execute(query, values)
        except Exception as exc:
            raise _converted(exc) from None
        if cur.description is None and cur.rowcount > 0:
            self.total_changes += cur.rowcount
        return Cursor(cur)

    def executemany(self, sql: str, seq: Iterable[Iterable[Any]]) -> Cursor:
        rows = [dialect.params(list(p)) for p in seq]
        cur = self.raw.cursor()
        if rows:
            try:
                cur.executemany(self.translate(sql, True), rows)
            except Exception as exc:
                raise _converted(exc) from None
            if cur.rowcount > 0:
                self.total_changes += cur.rowcount
        return Cursor(cur)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        if self.broken:  # nothing to roll back on a dead connection
            return False
        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    row_factory: Any = None  # rows read by index and by name already (sqlite3.Row's face)

    def commit(self) -> None:
        """Nothing to do: outside the store's explicit transactions every statement commits."""

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def broken(self) -> bool:
        return bool(self.raw.closed or self.raw.broken)

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass


class _MigrationConnection(PgConnection):
    """The connection a migration's ``up`` sees (as ``db.conn``): DDL is translated as DDL."""

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Cursor:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head in ("CREATE", "ALTER", "DROP") and not params:
            cur: Cursor | None = None
            for stmt in dialect.translate_ddl(sql):
                cur = PgConnection.execute(self, stmt)
            assert cur is not None
            return cur
        return PgConnection.execute(self, sql, params)


class MigrationDb:
    """What a migration's ``up(db)`` uses of ``sqlite_utils.Database``: ``execute`` and ``conn``."""

    def __init__(self, conn: _MigrationConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Cursor:
        return self.conn.execute(sql, params)


def apply_migrations(conn: PgConnection) -> list[str]:
    """Apply the pending numbered migrations (the same ``store/migrations`` modules as SQLite),
    each in one transaction with its record in ``schema_migrations``. Refuses a database that
    has a migration this version does not know (:class:`store.upgrade.SchemaTooNew`)."""
    import importlib

    from . import migrations, upgrade

    mconn = _MigrationConnection(conn.raw)
    mconn.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
    try:
        mconn.execute("CREATE EXTENSION IF NOT EXISTS citext")
        mconn.execute(f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
            n BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL,
            UNIQUE (migration_set, name))""")
        done = applied(conn)
        known = migrations.known()
        upgrade.refuse_newer(done, known, "the PostgreSQL database")
        pending = [name for name in known if name not in set(done)]
        db = MigrationDb(mconn)
        for name in pending:
            module = importlib.import_module(f"store.migrations.{name}")
            mconn.execute("BEGIN")
            try:
                module.up(db)
                mconn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migrations.MIGRATION_SET, name, time.strftime("%Y-%m-%d %H:%M:%S+00:00",
                                                                   time.gmtime())))
                mconn.execute("COMMIT")
            except BaseException:
                if mconn.in_transaction:
                    mconn.execute("ROLLBACK")
                raise
        return pending
    finally:
        if not mconn.broken:
            mconn.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")


def applied(conn: PgConnection) -> list[str]:
    """The migrations recorded in the database, in the order applied ([] on an empty one)."""
    from . import migrations

    exists = conn.execute("SELECT to_regclass(?)", (MIGRATIONS_TABLE,)).fetchone()[0]
    if exists is None:
        return []
    return [r[0] for r in conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY n",
        (migrations.MIGRATION_SET,))]


class PgDatabase(Database):
    """:class:`store.db.Database` on PostgreSQL: the writer thread and its group commit, the
    reader threads, each on a connection of its own; a broken connection is reopened."""

    dialect = dialect.POSTGRESQL

    def __init__(self, url: str, *, readers: int = 4, connect_timeout: float = 5.0) -> None:
        super().__init__("postgresql", readers=readers)
        self.url = url
        self.connect_timeout = connect_timeout
        self._write_lock = threading.Lock()

    def _connect(self, name: str) -> PgConnection:
        return PgConnection.open(self.url, connect_timeout=self.connect_timeout,
                                 application_name=f"converger {name}")

    def start(self, prepare: Callable[[Any], Any] | None = None) -> Any:
        conn = self._connect("writer")
        try:
            result = prepare(conn) if prepare is not None else None
        except BaseException:
            conn.close()
            raise
        self._write_conn = conn  # type: ignore[assignment]
        self._writer = threading.Thread(target=self._run_writer, name="db-writer", daemon=True)
        self._writer.start()
        return result

    def health(self) -> dict[str, Any]:
        """One round trip on a reader's connection: ``{"ok": …, "latency_ms": …}``."""
        started = time.perf_counter()
        try:
            self.read_sync(lambda conn: conn.execute("SELECT 1").fetchone())
        except sqlite3.Error as exc:
            return {"ok": False, "backend": "postgresql", "error": str(exc)[:200]}
        return {"ok": True, "backend": "postgresql",
                "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    # -- internals -----------------------------------------------------------------------
    def _reader(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.broken:
            conn.close()
            conn = None
        if conn is None:
            conn = self._connect("reader")
            self._local.conn = conn
            with self._reader_lock:
                live: list[Any] = [c for c in self._reader_conns if not c.broken]  # type: ignore[attr-defined]
                live.append(conn)
                self._reader_conns = live
        return conn

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        # A read on a connection that PostgreSQL dropped since its last use (a restart) is
        # retried once on a new one: nothing was written, so nothing can be done twice.
        for attempt in (1, 2):
            conn = self._reader()
            try:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    return fn(conn, *args)
                finally:
                    if not conn.broken and conn.in_transaction:
                        conn.execute("ROLLBACK")
            except StorageUnavailable:
                if attempt == 2 or not conn.broken:
                    raise
        raise AssertionError("unreachable")

    def _run_batch(self, conn: Any, batch: list[Any]) -> None:
        """One group-commit transaction of ``batch``, run again when PostgreSQL rolled it back for
        a transient reason (a dropped connection, a restart or failover, a serialization failure,
        a deadlock): at most :data:`RETRY_ATTEMPTS` times, with a jittered backoff in between.

        Nothing is committed twice and nothing uncommitted is reported as done: a transaction
        that failed before COMMIT was rolled back whole, so running its jobs again is running
        them once. When the connection is lost *during* COMMIT the outcome is unknown to the
        client, so each transaction learns its id first (``txid_current()``, in the round trip
        of its ``BEGIN``) and the writer then asks PostgreSQL on a new connection
        (``txid_status``): committed — the jobs' results stand; aborted — run again; still
        unknown after :data:`OUTCOME_PATIENCE` — every job fails with
        :class:`StorageUnavailable` (503: the client does not know, nor is told it succeeded).
        """
        import random

        attempt = 0
        while True:
            attempt += 1
            failure: BaseException
            try:
                self._reconnect(conn)
                results, xid, commit_error = self._attempt(conn, batch)
            except _Rollback as rb:
                failure = rb.cause
            except _Failed as failed:  # the one job of the batch failed: nothing committed
                self._resolve(failed.results)
                return
            else:
                if commit_error is None:
                    self.commits += 1
                    if self.on_commit is not None:
                        self.on_commit()
                    self._resolve(results)
                    return
                if conn.broken:
                    self.outcomes_asked += 1
                    outcome = self._outcome(xid)
                else:
                    outcome = "aborted"
                if outcome == "committed":
                    log.warning("connection lost during COMMIT of transaction %s: it committed", xid)
                    self.commits += 1
                    if self.on_commit is not None:
                        self.on_commit()
                    self._resolve(results)
                    return
                if outcome != "aborted":
                    err = StorageUnavailable(
                        f"PostgreSQL unavailable during COMMIT (transaction {xid}: {outcome}); "
                        "its outcome is unknown")
                    self._resolve([(lp, f, err, None) for _, _, lp, f in batch])
                    return
                failure = commit_error
            if not transient(failure) or attempt >= RETRY_ATTEMPTS:
                if transient(failure) and not isinstance(failure, StorageUnavailable):
                    failure = StorageUnavailable(f"PostgreSQL: {failure} (after {attempt} attempts)")
                self._resolve([(lp, f, failure, None) for _, _, lp, f in batch])
                return
            self.retries += 1
            log.warning("write transaction rolled back (%s); attempt %d of %d",
                        failure, attempt + 1, RETRY_ATTEMPTS)
            time.sleep(random.uniform(0, min(RETRY_CAP, RETRY_BASE * 2 ** attempt)))

    retries = 0  # write transactions run again, for the tests and the logs
    outcomes_asked = 0  # COMMITs whose connection was lost, their outcome asked of PostgreSQL

    def _reconnect(self, conn: Any) -> None:
        if conn.broken:  # PostgreSQL restarted or dropped us since the last batch: reconnect
            try:
                fresh = self._connect("writer")
            except StorageUnavailable as exc:
                raise _Rollback(exc) from None
            conn.close()
            conn.raw, conn.total_changes = fresh.raw, 0

    def _attempt(self, conn: Any, batch: list[Any]
                 ) -> tuple[list[tuple[Any, Any, BaseException | None, Any]], int | None,
                            BaseException | None]:
        """Run the jobs in one transaction: ``(results, transaction id, COMMIT's error)``;
        raises :class:`_Rollback` when the transaction failed before COMMIT for a reason that
        fails every job (the connection, a serialization failure, a deadlock)."""
        results: list[tuple[Any, Any, BaseException | None, Any]] = []
        single = len(batch) == 1
        try:
            cur = conn.raw.execute("BEGIN; SELECT txid_current()")
            cur.nextset()
            xid = int(cur.fetchone()[0])
        except Exception as exc:
            self._abandon(conn)
            raise _Rollback(_converted(exc)) from None
        for fn, args, loop, fut in batch:
            try:
                if not single:
                    conn.execute("SAVEPOINT job")
                value = fn(conn, *args)
                if not single:
                    conn.execute("RELEASE job")
            except BaseException as exc:  # noqa: BLE001 - the job's own failure, or the batch's
                if single or transient(exc) or not conn.in_transaction:
                    if not single and not transient(exc):  # fails the batch, not just this job
                        exc = StorageUnavailable(f"PostgreSQL: {exc}")
                    self._abandon(conn)
                    if single and not transient(exc):
                        raise _Failed([(loop, fut, exc, None)]) from None
                    raise _Rollback(exc) from None
                try:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                except BaseException as again:  # noqa: BLE001 - the connection went meanwhile
                    self._abandon(conn)
                    raise _Rollback(again) from None
                results.append((loop, fut, exc, None))
            else:
                results.append((loop, fut, None, value))
        try:
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - see _run_batch: the outcome may be unknown
            self._abandon(conn)
            return results, xid, exc
        return results, xid, None

    @staticmethod
    def _abandon(conn: Any) -> None:
        if not conn.broken and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _outcome(self, xid: int | None) -> str:
        """``txid_status(xid)`` asked on a new connection: "committed", "aborted", or why it
        is not known (PostgreSQL still away after :data:`OUTCOME_PATIENCE` seconds)."""
        if xid is None:
            return "aborted"
        deadline = time.monotonic() + OUTCOME_PATIENCE
        why = "unknown"
        delay = RETRY_BASE
        while True:
            try:
                probe = self._connect("writer outcome")
                try:
                    status = probe.execute("SELECT txid_status(?)", (xid,)).fetchone()[0]
                finally:
                    probe.close()
                if status in ("committed", "aborted"):
                    return str(status)
                why = f"status {status}"  # in progress: its backend is still going away
            except sqlite3.Error as exc:
                why = str(exc)
            if time.monotonic() + delay > deadline:
                return why
            time.sleep(delay)
            delay = min(delay * 2, RETRY_CAP)

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN")


class _Failed(Exception):
    """The only job of a batch failed (its own error): rolled back, nothing to run again."""

    def __init__(self, results: list[tuple[Any, Any, BaseException | None, Any]]) -> None:
        super().__init__("job failed")
        self.results = results


class _Rollback(Exception):
    """The transaction of a batch ended before COMMIT (rolled back): ``cause`` says why."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
