"""``converger db copy --from SOURCE --to TARGET``: every table of a deployment, from a SQLite
file to PostgreSQL or back (either side a file path or a ``postgresql://`` URL).

- The target gets the schema from the same migrations (:mod:`store.migrations`) and must hold
  no data yet; both sides must be at the same migration (run the newer converger on the older
  side first).
- A SQLite source is read inside ``BEGIN IMMEDIATE``: nothing can write to it while it is copied
  (a gateway still running on it waits). A PostgreSQL source is read in one ``REPEATABLE READ``
  snapshot.
- Tables are copied parents first (by their foreign keys), in batches, in one transaction on the
  target; the change feed and the processes' own rows (``feed``, ``leases``, ``workers``) are not
  data and are left out.
- Then each table is verified: the number of rows and a checksum of its content (order-blind: the
  sum of a SHA-256 per row, so the two engines' collations cannot disagree) on both sides.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from . import dialect, migrations

SKIP = {"feed", "leases", "workers", "feed_counter", "schema_migrations", "_sqlite_migrations",
        "rate_limits"}
BATCH = 2000


class CopyError(RuntimeError):
    """The copy cannot be done (or did not verify): the message says why."""


class TableReport(msgspec.Struct):
    table: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str

    @property
    def ok(self) -> bool:
        return (self.source_rows == self.target_rows
                and self.source_checksum == self.target_checksum)


def open_side(where: str, *, create: bool = False) -> Any:
    """A connection to ``where``: a SQLite file or a PostgreSQL URL (autocommit)."""
    if dialect.is_postgresql(where):
        from .pg import PgConnection

        return PgConnection.open(where, application_name="converger db copy")
    path = Path(where)
    if not create and not path.exists():
        raise CopyError(f"{where}: no such SQLite file")
    from .connect import connect

    return connect(path)


def tables(conn: Any) -> list[str]:
    """The data tables, parents before the tables that reference them."""
    if dialect.of(conn) == dialect.POSTGRESQL:
        names = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
        refs: dict[str, set[str]] = {n: set() for n in names}
        for child, parent in conn.execute(
                "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text "
                "FROM pg_constraint c WHERE c.contype = 'f'"):
            refs.setdefault(child, set()).add(parent)
    else:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        refs = {n: {r[2] for r in conn.execute(f"PRAGMA foreign_key_list({n})")} for n in names}
    names = sorted(n for n in names if n not in SKIP)
    out: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen or name in path:
            return
        for parent in sorted(refs.get(name, ())):
            if parent in names and parent != name:
                visit(parent, (*path, name))
        seen.add(name)
        out.append(name)

    for name in names:
        visit(name, ())
    return out


def columns(conn: Any, table: str) -> list[str]:
    if dialect.of(conn) == dialect.POSTGRESQL:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _canonical(value: Any) -> bytes:
    if value is None:
        return b"\x00N"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, float):
        return (b"i" + str(int(value)).encode()) if value.is_integer() else b"f" + repr(value).encode()
    if isinstance(value, bytes | memoryview):
        return b"b" + bytes(value)
    return b"s" + str(value).encode()


def _rows(conn: Any, table: str, cols: list[str]) -> Iterable[tuple[Any, ...]]:
    cur = conn.execute(f"SELECT {', '.join(cols)} FROM {table}")
    while True:
        chunk = cur.fetchmany(BATCH)
        if not chunk:
            return
        for row in chunk:
            yield tuple(row)


def checksum(conn: Any, table: str, cols: list[str]) -> tuple[int, str]:
    """(rows, checksum) of ``table``'s ``cols``: the sum of each row's SHA-256, mod 2**128."""
    total, n = 0, 0
    for row in _rows(conn, table, cols):
        digest = hashlib.sha256(b"\x1f".join(_canonical(v) for v in row)).digest()
        total = (total + int.from_bytes(digest[:16], "big")) % (1 << 128)
        n += 1
    return n, f"{total:032x}"


def _begin_read(conn: Any) -> None:
    if dialect.of(conn) == dialect.POSTGRESQL:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    else:
        conn.execute("BEGIN IMMEDIATE")  # the write lock: nothing changes while we copy


def copy(source: str, target: str, *, progress: Any = None) -> list[TableReport]:
    """Copy every data table of ``source`` into the empty ``target``; verify; report per table.
    Raises :class:`CopyError` when the copy cannot be made or does not verify."""
    if Path(source).resolve() == Path(target).resolve() and not dialect.is_postgresql(source):
        raise CopyError("--from and --to are the same database")
    src = open_side(source)
    dst = open_side(target, create=True)
    try:
        src_applied = migrations.applied(src)
        if not src_applied:
            raise CopyError(f"{_show(source)} has no converger schema")
        migrations.apply(dst)
        if migrations.applied(dst) != src_applied:
            raise CopyError(
                f"{_show(source)} is at {src_applied[-1]} and {_show(target)} at "
                f"{migrations.applied(dst)[-1]}: start the newer converger on the older one first")
        names = tables(src)
        missing = set(names) - set(tables(dst))
        if missing:
            raise CopyError(f"{_show(target)} lacks the tables {', '.join(sorted(missing))}")
        for name in names:
            if dst.execute(f"SELECT 1 FROM {name} LIMIT 1").fetchone() is not None \
                    and name not in _SEEDED:
                raise CopyError(f"{_show(target)} already holds data ({name}): copy into an "
                                "empty database")
        _begin_read(src)
        try:
            dst.execute("BEGIN")
            try:
                _triggers(dst, names, "DISABLE")
                for name in names:
                    cols = [c for c in columns(src, name) if c in set(columns(dst, name))]
                    if name in _SEEDED:  # rows the migrations made: the source's replace them
                        dst.execute(f"DELETE FROM {name}")
                    sql = (f"INSERT INTO {name} ({', '.join(cols)}) "
                           f"VALUES ({', '.join('?' * len(cols))})")
                    batch: list[tuple[Any, ...]] = []
                    for row in _rows(src, name, cols):
                        batch.append(row)
                        if len(batch) >= BATCH:
                            dst.executemany(sql, batch)
                            batch.clear()
                    if batch:
                        dst.executemany(sql, batch)
                    if progress is not None:
                        progress(name)
                _triggers(dst, names, "ENABLE")
                dst.execute("DELETE FROM feed")  # what the triggers wrote: not events to replay
                _after_copy(dst)
                _feed_after_positions(dst, names)
                dst.execute("COMMIT")
            except BaseException:
                if dst.in_transaction:
                    dst.execute("ROLLBACK")
                raise
            reports = []
            for name in names:
                cols = sorted(set(columns(src, name)) & set(columns(dst, name)))
                n_src, sum_src = checksum(src, name, cols)
                n_dst, sum_dst = checksum(dst, name, cols)
                reports.append(TableReport(name, n_src, n_dst, sum_src, sum_dst))
        finally:
            if src.in_transaction:
                src.execute("ROLLBACK")
        return reports
    except sqlite3.Error as exc:
        raise CopyError(str(exc)) from None
    finally:
        src.close()
        dst.close()


# Tables whose rows the migrations insert (m0015's SLA tiers): the source's rows replace them.
# Rows the migrations make (the default tiers; the analytics job's cursor, m0026): the
# source's replace them.
_SEEDED = {"sla_tiers", "analytics_state"}


def _triggers(dst: Any, names: list[str], how: str) -> None:
    """PostgreSQL: the feed's triggers off while copying (each would write a feed row and bump
    the feed counter per copied row — old news, deleted afterwards anyway); on again after, in
    the same transaction. (SQLite's cost nothing worth the trouble.)"""
    if dialect.of(dst) == dialect.POSTGRESQL:
        for name in names:
            dst.execute(f"ALTER TABLE {name} {how} TRIGGER USER")


def _after_copy(dst: Any) -> None:
    """PostgreSQL: identity columns continue after the copied ids."""
    if dialect.of(dst) != dialect.POSTGRESQL:
        return
    for table, column in dst.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
        if table in SKIP:
            continue
        dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)")


def _feed_after_positions(dst: Any, names: list[str]) -> None:
    """The copied positions in the feed — the event relay's ``last_id``, the analytics job's
    ``activities_cursor`` — are the source's feed ids. The target's feed must continue after
    the highest of them: a new event given a lower id would be taken as already published or
    already counted, and skipped."""
    highest = 0
    if "event_relay" in names:
        highest = max(highest, dst.execute(
            "SELECT coalesce(max(last_id), 0) FROM event_relay").fetchone()[0])
    if "analytics_state" in names:
        highest = max(highest, dst.execute(
            "SELECT coalesce(max(value), 0) FROM analytics_state "
            "WHERE name = 'activities_cursor'").fetchone()[0])
    if not highest:
        return
    if dialect.of(dst) == dialect.POSTGRESQL:
        dst.execute("UPDATE feed_counter SET n = ? WHERE n < ?", (highest, highest))
    elif dst.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'feed' AND seq < ?",
                     (highest, highest)).rowcount == 0 and dst.execute(
            "SELECT 1 FROM sqlite_sequence WHERE name = 'feed'").fetchone() is None:
        dst.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('feed', ?)", (highest,))


def _show(where: str) -> str:
    if dialect.is_postgresql(where):
        from .pg import redact

        return redact(where)
    return where


def report_lines(reports: list[TableReport]) -> list[str]:
    width = max([len(r.table) for r in reports] + [5])
    lines = [f"{'table':<{width}}  {'source':>9}  {'target':>9}  checksum"]
    for r in reports:
        lines.append(f"{r.table:<{width}}  {r.source_rows:>9}  {r.target_rows:>9}  "
                     f"{'ok ' + r.source_checksum[:12] if r.ok else 'MISMATCH'}")
    return lines
