"""SLA tiers (issue 21): named plans with per-tenant limits and a delivery priority, and the
tier each tenant is on (no row: the gateway-wide limits). Three editable tiers to start with."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    """
    CREATE TABLE sla_tiers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL DEFAULT 0,
        activities_per_min INTEGER,
        deliveries_per_min INTEGER,
        max_connections INTEGER,
        max_upload_bytes INTEGER,
        retention_days INTEGER,
        max_channels INTEGER,
        inserted_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE tenant_tiers (
        tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
        tier_id TEXT NOT NULL REFERENCES sla_tiers(id) ON DELETE RESTRICT,
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX tenant_tiers_tier ON tenant_tiers (tier_id)",
    """
    INSERT INTO sla_tiers (id, name, description, priority, activities_per_min,
                           deliveries_per_min, max_connections, max_upload_bytes, retention_days,
                           max_channels, inserted_at, updated_at)
    VALUES
      ('00000000-0000-4000-8000-00000000f001', 'free', 'Best effort', 0, 600, 60, 50,
       5242880, 7, 3, strftime('%Y-%m-%dT%H:%M:%fZ'), strftime('%Y-%m-%dT%H:%M:%fZ')),
      ('00000000-0000-4000-8000-00000000f002', 'standard', '', 10, 6000, 600, 1000,
       10485760, 30, 20, strftime('%Y-%m-%dT%H:%M:%fZ'), strftime('%Y-%m-%dT%H:%M:%fZ')),
      ('00000000-0000-4000-8000-00000000f003', 'priority', 'Delivered first when the queue is behind',
       20, 60000, 6000, 10000, 52428800, 90, 100,
       strftime('%Y-%m-%dT%H:%M:%fZ'), strftime('%Y-%m-%dT%H:%M:%fZ'))
    """,
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
