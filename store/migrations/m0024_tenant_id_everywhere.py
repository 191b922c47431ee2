"""Every tenant-owned row carries ``tenant_id`` (issue 15): the three tables that reached their
tenant only through a channel or a delivery get the column, ``NOT NULL``, filled from their
parent row, so that distributing the store by tenant (Citus-style
``create_distributed_table(…, 'tenant_id')``, docs/scaling.md) needs no schema change.
``tests/unit/store/test_tenant_id.py`` lists every table of the schema and checks it.

- ``channel_health_checks`` ← its channel's tenant;
- ``channel_inbound_status`` ← its channel's tenant;
- ``delivery_attempts`` ← its delivery's tenant.

SQLite cannot add a ``NOT NULL`` column without a default, so there each table is made again and
its rows copied over (as m0019 does), indexes included. PostgreSQL adds the column, fills it and
then sets ``NOT NULL`` (the identity of ``delivery_attempts.id`` stays as it is)."""

from __future__ import annotations

from typing import Any

from .. import dialect
from . import execute_all

SQLITE_STATEMENTS = [
    """CREATE TABLE channel_health_checks_new (
        id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('healthy','degraded','unhealthy','unknown')),
        total_deliveries INTEGER NOT NULL DEFAULT 0,
        failed_deliveries INTEGER NOT NULL DEFAULT 0,
        failure_rate REAL NOT NULL DEFAULT 0.0 CHECK (failure_rate BETWEEN 0.0 AND 1.0),
        checked_at TEXT NOT NULL,
        inserted_at TEXT NOT NULL
    ) STRICT""",
    """INSERT INTO channel_health_checks_new (id, channel_id, tenant_id, status, total_deliveries,
           failed_deliveries, failure_rate, checked_at, inserted_at)
       SELECT h.id, h.channel_id, c.tenant_id, h.status, h.total_deliveries, h.failed_deliveries,
              h.failure_rate, h.checked_at, h.inserted_at
         FROM channel_health_checks h JOIN channels c ON c.id = h.channel_id""",
    "DROP TABLE channel_health_checks",
    "ALTER TABLE channel_health_checks_new RENAME TO channel_health_checks",
    "CREATE INDEX health_channel_checked ON channel_health_checks(channel_id, checked_at)",
    "CREATE INDEX health_checked ON channel_health_checks(checked_at)",
    """CREATE TABLE channel_inbound_status_new (
        channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        last_verification_at TEXT,
        last_refusal_at TEXT,
        last_refusal_reason TEXT
    )""",
    """INSERT INTO channel_inbound_status_new (channel_id, tenant_id, last_verification_at,
           last_refusal_at, last_refusal_reason)
       SELECT s.channel_id, c.tenant_id, s.last_verification_at, s.last_refusal_at,
              s.last_refusal_reason
         FROM channel_inbound_status s JOIN channels c ON c.id = s.channel_id""",
    "DROP TABLE channel_inbound_status",
    "ALTER TABLE channel_inbound_status_new RENAME TO channel_inbound_status",
    """CREATE TABLE delivery_attempts_new (
        id INTEGER PRIMARY KEY,
        delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        duration_ms INTEGER
    )""",
    """INSERT INTO delivery_attempts_new (id, delivery_id, tenant_id, attempt, at, ok, status,
           error, duration_ms)
       SELECT a.id, a.delivery_id, d.tenant_id, a.attempt, a.at, a.ok, a.status, a.error,
              a.duration_ms
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id""",
    "DROP TABLE delivery_attempts",
    "ALTER TABLE delivery_attempts_new RENAME TO delivery_attempts",
    "CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id, id)",
]

# (table, the parent table, the column naming the parent row)
_PARENTS = [
    ("channel_health_checks", "channels", "channel_id"),
    ("channel_inbound_status", "channels", "channel_id"),
    ("delivery_attempts", "deliveries", "delivery_id"),
]

PG_STATEMENTS = [
    stmt
    for table, parent, column in _PARENTS
    for stmt in (
        f"ALTER TABLE {table} ADD COLUMN tenant_id TEXT REFERENCES tenants(id) ON DELETE CASCADE",
        f"""UPDATE {table} SET tenant_id = p.tenant_id FROM {parent} p
             WHERE p.id = {table}.{column}""",
        f"DELETE FROM {table} WHERE tenant_id IS NULL",  # none: the parent's FK cascades
        f"ALTER TABLE {table} ALTER COLUMN tenant_id SET NOT NULL",
    )
]


def up(db: Any) -> None:
    if dialect.of(db.conn) == dialect.POSTGRESQL:
        for sql in PG_STATEMENTS:
            db.conn.raw.execute(sql)  # PostgreSQL's own DDL: not translated
    else:
        execute_all(db, SQLITE_STATEMENTS)
