"""Rich messages (issue 19): the WhatsApp message templates synced from each channel's provider
(``whatsapp_templates``: one row per channel, name and language, replaced at each sync), and
the background downloads of inbound media (``media_downloads``: one row per attachment of an
inbound activity, its status and attempts, retried on the delivery queue's schedule)."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS whatsapp_templates (
        channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        language TEXT NOT NULL,
        status TEXT NOT NULL,
        category TEXT,
        components TEXT NOT NULL DEFAULT '[]',
        synced_at TEXT NOT NULL,
        PRIMARY KEY (channel_id, name, language)
    ) STRICT
    """,
    """
    CREATE TABLE IF NOT EXISTS media_downloads (
        activity_id TEXT NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'stored', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        file_name TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (activity_id, idx)
    ) STRICT
    """,
    "CREATE INDEX IF NOT EXISTS media_downloads_due ON media_downloads(status, next_attempt_at)",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
