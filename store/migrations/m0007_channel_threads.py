"""Channel threads: where a conversation lives on a channel other than its own.

A conversation routed to a channel that threads (a Slack channel) gets a thread there the
first time one of its activities is sent; the row keeps (channel, thread key) → conversation,
so later sends go into the same thread and a reply posted in that thread comes back into the
conversation (instead of starting one of its own, which the routing rules could not send
back: a rule pair A → B → A is a cycle). One thread per conversation and channel."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE channel_threads (
        channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        thread_key TEXT NOT NULL CHECK (length(thread_key) > 0),
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        inserted_at TEXT NOT NULL,
        PRIMARY KEY (channel_id, thread_key),
        UNIQUE (channel_id, conversation_id)
    ) STRICT
    """,
    "CREATE INDEX channel_threads_conversation ON channel_threads(conversation_id)",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
