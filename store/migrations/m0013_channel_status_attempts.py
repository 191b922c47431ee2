"""What the admin panel shows about a channel and a delivery (issue 23): the last inbound
verification and refusal of each channel (``channel_inbound_status``: one row per channel,
replaced on each event), and every attempt of a delivery (``delivery_attempts``: time, outcome,
the error in full, how long it took), written with the attempt's outcome."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS channel_inbound_status (
        channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
        last_verification_at TEXT,
        last_refusal_at TEXT,
        last_refusal_reason TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS delivery_attempts (
        id INTEGER PRIMARY KEY,
        delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        duration_ms INTEGER
    )
    """,
    "CREATE INDEX IF NOT EXISTS delivery_attempts_delivery ON delivery_attempts(delivery_id, id)",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
