"""Safe upgrades and backups: which migrations a database file has, a consistent snapshot with
``VACUUM INTO``, and the refusal to touch a database written by a newer converger.

A new binary started on an older data directory snapshots the database beside it before it
migrates forward (``migrations.apply`` calls :func:`snapshot_before`); ``converger backup FILE``
makes the same snapshot from a read-only connection while the gateway runs. A snapshot is a
complete, compact SQLite file (no ``-wal`` beside it): rolling back is stopping the gateway and
putting the snapshot in the database's place.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

MIGRATIONS_TABLE = "_sqlite_migrations"


class SchemaTooNew(RuntimeError):
    """The database has migrations this version does not know: it was written by a newer one."""


def applied_names(conn: sqlite3.Connection, migration_set: str) -> list[str]:
    """The migrations of ``migration_set`` recorded in the database, in the order applied."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if not exists:
        return []
    rows = conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid",
        (migration_set,),
    ).fetchall()
    return [row[0] for row in rows]


def refuse_newer(applied: list[str], known: list[str], where: str) -> None:
    """Raise :class:`SchemaTooNew` when ``applied`` holds a migration not in ``known``."""
    unknown = [name for name in applied if name not in set(known)]
    if unknown:
        raise SchemaTooNew(
            f"{where} was written by a newer converger (its schema has {', '.join(unknown)}, "
            f"which this version does not know; this version knows up to {known[-1]}). "
            "Nothing was changed. Run the newer version, or restore a backup made before the "
            "upgrade (docs/deploy.md, 'Rolling back')."
        )


def inspect_file(path: Path, migration_set: str) -> list[str]:
    """The applied migrations of the database file at ``path`` (read-only; [] when missing)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        return applied_names(conn, migration_set)
    finally:
        conn.close()


def vacuum_into(conn: sqlite3.Connection, target: Path) -> Path:
    """Write a consistent, compact copy of ``conn``'s database to ``target`` (mode 0600).

    ``VACUUM INTO`` reads inside one transaction, so writers may go on meanwhile (WAL), and the
    copy is one self-contained file. ``target`` must not exist: it is created empty first with
    mode 0600 (a snapshot holds every tenant's data), which VACUUM INTO accepts.
    """
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
        check = sqlite3.connect(f"file:{target.resolve()}?mode=ro", uri=True)
        try:
            result = check.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            check.close()
        if result != "ok":
            raise sqlite3.DatabaseError(f"the snapshot {target} fails its check: {result}")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def snapshot_name(db_path: Path, before: str, now: float | None = None) -> Path:
    """``<db>.<UTC time>.before-<migration>.bak`` beside the database."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return db_path.with_name(f"{db_path.name}.{stamp}.before-{before}.bak")


def snapshot_before(conn: sqlite3.Connection, pending: list[str]) -> Path | None:
    """Snapshot the database of ``conn`` beside it before ``pending`` migrations are applied.
    Nothing to do for an in-memory database."""
    row = conn.execute("PRAGMA database_list").fetchone()
    if not row or not row[2]:
        return None
    db_path = Path(row[2])
    target = snapshot_name(db_path, pending[0])
    n = 1
    while target.exists():  # two upgrades in the same second: keep both
        n += 1
        target = target.with_name(f"{snapshot_name(db_path, pending[0]).name}.{n}")
    return vacuum_into(conn, target)


def backup(db_path: Path, target: Path) -> Path:
    """``converger backup``: snapshot a (possibly running) gateway's database to ``target``."""
    if not db_path.exists():
        raise FileNotFoundError(f"no database at {db_path}")
    conn = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        return vacuum_into(conn, target)
    finally:
        conn.close()
