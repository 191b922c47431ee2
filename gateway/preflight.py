"""Checks run by ``converger serve`` before anything is opened, so a broken environment gives
one clear line and a non-zero exit instead of a traceback from deep inside start-up."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .config import Settings


def _probe_dir(path: Path) -> str | None:
    """Create the directory if needed and prove a file can be created in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".converger-probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        return f"{path} is not writable ({exc.strerror or exc})"
    return None


def check(settings: Settings) -> str | None:
    """None when the data directory and the database can be written, else what is wrong.

    SQLite in WAL mode creates ``-wal`` and ``-shm`` files next to the database, so its
    directory must be writable too, not only the file.
    """
    problem = _probe_dir(Path(settings.data_dir))
    if problem:
        return f"data directory {problem}"
    if settings.postgresql:
        return _check_postgresql(settings.database_url)
    db = Path(settings.db_path)
    problem = _probe_dir(db.parent)
    if problem:
        return f"database directory {problem}"
    if db.exists():
        if not os.access(db, os.R_OK | os.W_OK):
            return f"database {db} is not readable and writable"
        try:
            conn = sqlite3.connect(f"file:{db.resolve()}?mode=rw", uri=True)
            try:
                conn.execute("PRAGMA schema_version").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return f"database {db} cannot be opened: {exc}"
    return None


def _check_postgresql(url: str) -> str | None:
    """PostgreSQL answers at ``url`` with these credentials, and its schema is not newer than
    this version's: else one line that says which."""
    from store import migrations, pg, upgrade

    try:
        conn = pg.PgConnection.open(url, application_name="converger preflight")
    except sqlite3.Error as exc:
        return f"database {pg.redact(url)} cannot be opened: {exc}"
    try:
        upgrade.refuse_newer(pg.applied(conn), migrations.known(),
                             f"the database {pg.redact(url)}")
    except upgrade.SchemaTooNew as exc:
        return str(exc)
    except sqlite3.Error as exc:
        return f"database {pg.redact(url)} cannot be read: {exc}"
    finally:
        conn.close()
    return None
