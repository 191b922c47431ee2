"""Alerts: the gateway's own signed webhooks (channel health changes, docs/operations.md) as a durable
queue. A row is written in the same transaction as the health check that raised it and is worked
like a delivery: claimed with a lease, retried with the deliveries' backoff, ``failed`` after the
fifth attempt or at once on ``410``; its id is the ``webhook-id`` of every attempt."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','sent','failed')),
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error TEXT,
        next_attempt_at TEXT,
        leased_until TEXT,
        claim_token TEXT,
        sent_at TEXT,
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX alerts_due ON alerts(next_attempt_at) WHERE status = 'pending'",
    "CREATE INDEX alerts_tenant ON alerts(tenant_id, inserted_at)",
    "CREATE INDEX alerts_finished ON alerts(updated_at) WHERE status != 'pending'",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
