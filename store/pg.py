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


class StorageUnavailable(sqlite3.OperationalError):
    """PostgreSQL cannot be reached or dropped the connection: nothing of the transaction was
    committed. ``sqlite_errorname`` says so in SQLite's terms (gateway/errors.py)."""

    sqlite_errorname = "SQLITE_IOERR_POSTGRESQL"


class PgError(sqlite3.OperationalError):
    """Any other error PostgreSQL reported for a statement."""


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
    if isinstance(exc, psycopg.errors.IntegrityError):
        return PgIntegrityError(said)
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown
                  | psycopg.errors.CannotConnectNow | psycopg.InterfaceError):
        return StorageUnavailable(f"PostgreSQL unavailable: {said}")
    if isinstance(exc, psycopg.Error):
        return PgError(said)
    return exc


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
        if conn.broken:  # PostgreSQL restarted or dropped us since the last batch: reconnect
            try:
                fresh = self._connect("writer")
            except StorageUnavailable as exc:
                self._resolve([(loop, fut, exc, None) for _, _, loop, fut in batch])
                return
            conn.close()
            conn.raw, conn.total_changes = fresh.raw, 0
        super()._run_batch(conn, batch)

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN")
