"""Server-side web sessions: a login writes a row, the cookie names it, a logout deletes it.
A cookie copied before a logout no longer works, though it is still signed and unexpired."""

from sqlite_utils import Database


def up(db: Database) -> None:
    db.conn.execute("""
        CREATE TABLE web_sessions (
            id TEXT PRIMARY KEY,
            area TEXT NOT NULL CHECK (area IN ('admin', 'portal')),
            user_id TEXT NOT NULL,
            expires_at TEXT NOT NULL
        ) STRICT
    """)
    db.conn.execute("CREATE INDEX web_sessions_user ON web_sessions(user_id)")
