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
