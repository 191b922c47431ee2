"""The activity event stream's outbox relay (issue 16, ``CONVERGER_EVENTS_URL``): the feed is the
outbox, and ``event_relay`` keeps how far the relay has published it (``last_id``: the last feed
id the broker confirmed), with its state for ``/readyz``. The feed pruner keeps every event after
``last_id`` while the stream is configured, so a relay that stopped (crash, broker outage)
resumes where it stopped."""

from sqlite_utils import Database


def up(db: Database) -> None:
    db.conn.execute("""
        CREATE TABLE event_relay (
            name TEXT PRIMARY KEY,
            last_id INTEGER NOT NULL,
            state TEXT NOT NULL,
            error TEXT,
            published INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        ) STRICT
    """)
