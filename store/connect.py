"""Opening SQLite connections. Every PRAGMA lives here, in one place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def connect(
    path: str | Path,
    *,
    readonly: bool = False,
    synchronous: str = "NORMAL",
    checkpoints: bool = True,
    max_pages: int = 0,
) -> sqlite3.Connection:
    """Open a connection with converger's pragmas.

    ``isolation_level=None`` puts the connection in autocommit mode: transactions are opened
    explicitly with ``BEGIN IMMEDIATE`` by the writer, so Python's sqlite3 never opens one
    behind our back. ``checkpoints=False`` leaves WAL checkpoints to an outside process
    (Litestream), which needs to own them while it replicates. ``max_pages`` caps the file
    (``PRAGMA max_page_count``): a write past it fails with SQLITE_FULL, as on a full disk.
    """
    sync = synchronous.upper()
    if sync not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    if readonly:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # busy_timeout first, so that every later pragma already waits instead of failing.
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # Keep the WAL file from staying huge after a burst once it has been checkpointed.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        if not checkpoints:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
    if max_pages > 0 and not readonly:
        conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
    conn.execute(f"PRAGMA synchronous = {sync}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -16000")
    return conn
