"""Several processes on one database (``converger serve --workers N``): the store is the log
between them.

- ``feed``: every event a socket in any process must hear, in commit order. ``id`` is
  AUTOINCREMENT, so it is never reused and grows in commit order (SQLite serialises writers);
  a reader keeps the last id it published and reads what follows. New activities and tenant
  changes are written by triggers, so no write path can forget them; delivery states and health
  changes by the transactions that make them. Rows are pruned after a few minutes.
- ``leases``: named singleton roles (the scheduler, the alert sender, Litestream) held by one
  process until it stops renewing them.
- ``workers``: each process's heartbeat, pid and socket count (``/readyz`` reports them all).
- ``job_runs``: when each periodic job last ran, so a new scheduler owner keeps the period.
"""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE feed (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('a', 'd', 'h', 'i')),
        topic TEXT NOT NULL,
        ref TEXT,
        data TEXT
    )
    """,
    # a: new activity (topic: conversation id, ref: activity id); d: delivery_status (topic:
    # conversation id, data: payload); h: health_changed (data: payload); i: a cache to drop.
    """
    CREATE TRIGGER feed_activity AFTER INSERT ON activities BEGIN
        INSERT INTO feed (kind, topic, ref) VALUES ('a', NEW.conversation_id, NEW.id);
    END
    """,
    """
    CREATE TRIGGER feed_tenant_update AFTER UPDATE ON tenants BEGIN
        INSERT INTO feed (kind, topic) VALUES ('i', 'tenants');
    END
    """,
    """
    CREATE TRIGGER feed_tenant_delete AFTER DELETE ON tenants BEGIN
        INSERT INTO feed (kind, topic) VALUES ('i', 'tenants');
    END
    """,
    """
    CREATE TRIGGER feed_tenant_insert AFTER INSERT ON tenants BEGIN
        INSERT INTO feed (kind, topic) VALUES ('i', 'tenants');
    END
    """,
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL,
        taken_at REAL NOT NULL
    ) STRICT
    """,
    """
    CREATE TABLE workers (
        slot INTEGER PRIMARY KEY,
        pid INTEGER NOT NULL,
        owner TEXT NOT NULL,
        started_at REAL NOT NULL,
        seen_at REAL NOT NULL,
        sockets INTEGER NOT NULL DEFAULT 0,
        ready INTEGER NOT NULL DEFAULT 1
    ) STRICT
    """,
    """
    CREATE TABLE job_runs (
        name TEXT PRIMARY KEY,
        last_run TEXT NOT NULL,
        runs INTEGER NOT NULL DEFAULT 0,
        pid INTEGER NOT NULL
    ) STRICT
    """,
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
