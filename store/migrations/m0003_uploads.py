"""Uploads (Converger API): which conversation a stored file belongs to, so it is served
only to callers allowed to read that conversation (the original stored uploads but never served
them).
The bytes live under ``<data_dir>/uploads/<tenant_id>/<file_name>``."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        file_name TEXT NOT NULL CHECK (length(file_name) > 0),
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        inserted_at TEXT NOT NULL,
        UNIQUE (tenant_id, file_name)
    ) STRICT
    """,
    "CREATE INDEX uploads_conversation ON uploads (conversation_id)",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
