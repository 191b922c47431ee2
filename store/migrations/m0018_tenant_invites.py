"""Tenant-user invitations (issue 23): a tenant's users are invited by a link instead of being
given a password. Only the SHA-256 of the link's token is kept; a link works once, until it
expires."""

from sqlite_utils import Database


def up(db: Database) -> None:
    db.conn.execute("""
        CREATE TABLE tenant_invites (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            email TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('owner','admin','member','viewer')),
            token_hash TEXT NOT NULL UNIQUE,
            invited_by TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,
            inserted_at TEXT NOT NULL
        ) STRICT
    """)
    db.conn.execute("CREATE INDEX tenant_invites_tenant ON tenant_invites(tenant_id)")
