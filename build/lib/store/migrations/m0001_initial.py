"""The core schema: tenants, channels, conversations, activities, the delivery queue,
routing rules, audit log, health checks, users and admin API tokens.

Invariants live in the schema (CHECK constraints, partial UNIQUE indexes, foreign keys).
Timestamps are ISO-8601 UTC text with 6 fractional digits and ``Z``, so they sort as text.
"""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL CHECK (length(name) > 0),
        api_key_hash TEXT NOT NULL UNIQUE,
        api_key_hint TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        alert_webhook_url TEXT,
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT
    """,
    """
    CREATE TABLE channels (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL CHECK (length(name) > 0),
        secret_hash TEXT NOT NULL,
        secret_enc TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        type TEXT NOT NULL CHECK (type IN ('echo','webhook','websocket','whatsapp_meta','whatsapp_infobip')),
        mode TEXT NOT NULL DEFAULT 'duplex' CHECK (mode IN ('inbound','outbound','duplex')),
        config TEXT NOT NULL DEFAULT '{}',
        transformations TEXT NOT NULL DEFAULT '[]',
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (tenant_id, name)
    ) STRICT
    """,
    "CREATE INDEX channels_secret_hash ON channels(secret_hash)",
    "CREATE INDEX channels_tenant_mode_status ON channels(tenant_id, mode, status)",
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        status TEXT NOT NULL DEFAULT 'active',
        metadata TEXT NOT NULL DEFAULT '{}',
        last_seq INTEGER NOT NULL DEFAULT 0,
        sender_key TEXT,
        last_activity_at TEXT,
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX conversations_tenant ON conversations(tenant_id, inserted_at)",
    "CREATE INDEX conversations_channel ON conversations(channel_id)",
    # One open conversation per (channel, sender): inbound threading.
    """
    CREATE UNIQUE INDEX conversations_open_thread ON conversations(channel_id, sender_key)
    WHERE sender_key IS NOT NULL AND status = 'active'
    """,
    """
    CREATE TABLE activities (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL CHECK (seq > 0),
        type TEXT NOT NULL DEFAULT 'message',
        sender TEXT NOT NULL,
        text TEXT,
        attachments TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{}',
        idempotency_key TEXT,
        source_channel_id TEXT,
        external_id TEXT,
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (conversation_id, seq)
    ) STRICT
    """,
    "CREATE INDEX activities_tenant ON activities(tenant_id)",
    """
    CREATE UNIQUE INDEX activities_idempotency ON activities(conversation_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL
    """,
    # A provider's retry of the same inbound message id creates nothing new.
    """
    CREATE UNIQUE INDEX activities_external ON activities(source_channel_id, external_id)
    WHERE external_id IS NOT NULL
    """,
    """
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        activity_id TEXT NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
        channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        conversation_id TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending','sent','delivered','read','failed')),
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_error TEXT,
        next_attempt_at TEXT,
        leased_until TEXT,
        claim_token TEXT,
        sent_at TEXT,
        delivered_at TEXT,
        read_at TEXT,
        provider_message_id TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (activity_id, channel_id)
    ) STRICT
    """,
    "CREATE INDEX deliveries_channel ON deliveries(channel_id, inserted_at)",
    "CREATE INDEX deliveries_tenant_status ON deliveries(tenant_id, status)",
    # The queue's hot index: only rows that still have work are in it.
    """
    CREATE INDEX deliveries_due ON deliveries(next_attempt_at)
    WHERE status = 'pending' AND claim_token IS NULL
    """,
    """
    CREATE INDEX deliveries_leased ON deliveries(leased_until)
    WHERE claim_token IS NOT NULL
    """,
    """
    CREATE INDEX deliveries_provider ON deliveries(channel_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL
    """,
    """
    CREATE TABLE routing_rules (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL CHECK (length(name) > 0),
        source_channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        target_channel_ids TEXT NOT NULL DEFAULT '[]',
        enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (tenant_id, name)
    ) STRICT
    """,
    "CREATE INDEX routing_rules_source ON routing_rules(source_channel_id)",
    """
    CREATE TABLE audit_logs (
        id TEXT PRIMARY KEY,
        tenant_id TEXT REFERENCES tenants(id) ON DELETE SET NULL,
        actor_type TEXT NOT NULL
            CHECK (actor_type IN ('admin','admin_token','tenant_api','tenant_user','system')),
        actor_id TEXT NOT NULL,
        action TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        changes TEXT NOT NULL DEFAULT '{}',
        inserted_at TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX audit_logs_tenant ON audit_logs(tenant_id, inserted_at)",
    "CREATE INDEX audit_logs_resource ON audit_logs(resource_type, resource_id)",
    "CREATE INDEX audit_logs_inserted ON audit_logs(inserted_at)",
    """
    CREATE TABLE channel_health_checks (
        id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('healthy','degraded','unhealthy','unknown')),
        total_deliveries INTEGER NOT NULL DEFAULT 0,
        failed_deliveries INTEGER NOT NULL DEFAULT 0,
        failure_rate REAL NOT NULL DEFAULT 0.0 CHECK (failure_rate BETWEEN 0.0 AND 1.0),
        checked_at TEXT NOT NULL,
        inserted_at TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX health_channel_checked ON channel_health_checks(channel_id, checked_at)",
    "CREATE INDEX health_checked ON channel_health_checks(checked_at)",
    """
    CREATE TABLE admin_users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('super_admin','admin','viewer')),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','inactive')),
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT
    """,
    """
    CREATE TABLE tenant_users (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        email TEXT NOT NULL COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner','admin','member','viewer')),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','inactive')),
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (tenant_id, email)
    ) STRICT
    """,
    """
    CREATE TABLE admin_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        token_hint TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('super_admin','admin','viewer')),
        created_by TEXT,
        last_used_at TEXT,
        revoked_at TEXT,
        inserted_at TEXT NOT NULL
    ) STRICT
    """,
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
