"""Numbered, forward-only migrations, run at start-up through sqlite-utils' ``Migrations``.

Each module ``mNNNN_<name>.py`` defines ``up(db)``; modules run in number order, each in one
transaction together with the record of it having been applied (``_sqlite_migrations``).
A migration never loses data: it adds tables, columns and indexes, or copies rows forward.

The same modules make the PostgreSQL schema (:func:`store.pg.apply_migrations`, record in
``schema_migrations``): their SQLite DDL passes through :func:`store.dialect.translate_ddl`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3

import sqlite_utils

MIGRATION_SET = "converger"


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("m")]
    return sorted(names)


def migrations() -> sqlite_utils.Migrations:
    """The migration set, in number order."""
    mset = sqlite_utils.Migrations(MIGRATION_SET)
    for name in _modules():
        module = importlib.import_module(f"{__name__}.{name}")
        mset(name=name)(module.up)
    return mset


def known() -> list[str]:
    """The migrations this version knows, in number order."""
    return _modules()


def apply(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations on ``conn``; return the names applied.

    Refuses (:class:`store.upgrade.SchemaTooNew`, before any change) a database that has a
    migration this version does not know. When a database that already has migrations gets new
    ones, it is first snapshotted beside itself (``store.upgrade.snapshot_before``).
    """
    from .. import dialect, upgrade

    if dialect.of(conn) == dialect.POSTGRESQL:
        from .. import pg

        return pg.apply_migrations(conn)  # type: ignore[arg-type]
    done = upgrade.applied_names(conn, MIGRATION_SET)
    upgrade.refuse_newer(done, known(), "the database")
    db = sqlite_utils.Database(conn)
    mset = migrations()
    pending = [m.name for m in mset.pending(db)]
    if pending and done:
        upgrade.snapshot_before(conn, pending)
    mset.apply(db)
    return pending


def applied(conn: sqlite3.Connection) -> list[str]:
    from .. import dialect

    if dialect.of(conn) == dialect.POSTGRESQL:
        from .. import pg

        return pg.applied(conn)  # type: ignore[arg-type]
    return [m.name for m in migrations().applied(sqlite_utils.Database(conn))]


def execute_all(db: sqlite_utils.Database, statements: list[str]) -> None:
    """Run DDL one statement at a time (``executescript`` would commit behind our back)."""
    for sql in statements:
        db.execute(sql)


def widen_check(db: sqlite_utils.Database, table: str, old: str, new: str) -> None:
    """Replace the CHECK ``old`` by ``new`` in ``table``'s schema, in place.

    Widening a CHECK changes no stored row, so it takes SQLite's documented in-place procedure
    (sqlite.org/lang_altertable.html, "Making other kinds of table schema changes") instead of a
    copy-and-rename rebuild, which with foreign keys on would cascade-delete dependent rows. The
    schema version is bumped in the same transaction, so every open connection re-reads it."""
    from .. import dialect

    if dialect.of(db.conn) == dialect.POSTGRESQL:
        for statement in dialect.widen_check_pg(table, new):
            db.execute(statement)
        return
    conn = db.conn
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if old not in sql:  # already widened (or made by a later initial schema)
        return
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
                     (sql.replace(old, new), table))
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    (ok,) = conn.execute("PRAGMA quick_check").fetchone()
    if ok != "ok":
        raise RuntimeError(f"{table} CHECK migration left the schema damaged: {ok}")
