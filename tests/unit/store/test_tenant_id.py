"""Every tenant-owned row carries ``tenant_id`` (issue 15, m0024): the schema's tables are
listed from the database itself (SQLite's ``sqlite_master``, PostgreSQL's
``information_schema``; ``make test-postgres`` runs this module on PostgreSQL), and each one is
either tenant-owned — a ``NOT NULL`` ``tenant_id`` column that references ``tenants`` (the
analytics rollups: ``''`` is their gateway-wide row), filled in
every row the store writes — or named below as global, with the reason. A new table must be put
in one of the two, so distributing the store by tenant (docs/scaling.md) needs no schema change.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from store import channels, dialect, maintenance, migrations, queue
from store.db import Database
from tests.support import postgres
from tests.unit.store.conftest import make_channel, make_conversation, make_tenant, now

# Tables that belong to no tenant (each with why). Everything else must carry tenant_id.
GLOBAL = {
    # the tenants themselves
    "tenants",
    # the operator's side: admin panel users and tokens (a token or user may be scoped to one
    # tenant by tenant_scope, but most are gateway-wide), roles and SLA tiers (tenant_tiers, which
    # assigns one to a tenant, is tenant-owned)
    "admin_users", "admin_tokens", "roles", "sla_tiers",
    # login sessions of both areas: an admin panel session has no tenant; a portal session names
    # a tenant_users row, which carries the tenant (sessions are per node in effect: short-lived)
    "web_sessions",
    # the migrations' own records (SQLite's sqlite-utils table, PostgreSQL's)
    "_sqlite_migrations", "schema_migrations", "sqlite_sequence",
    # process state, not data: the change feed between processes/nodes and its counter,
    # leases of singletons, worker slots, scheduled jobs' last runs, the event relay's cursor,
    # the analytics rollup's own cursor, the processes holding tier-counted sockets (m0027;
    # their counts, tenant_sockets, carry the tenant)
    "feed", "feed_counter", "leases", "workers", "job_runs", "event_relay", "analytics_state",
    "socket_holders",
    # the rate limits' GCRA rows on PostgreSQL (store/ratelimits.py, made at first use; keyed
    # by scope and tenant, channel or client IP)
    "rate_limits",
}

# Tables with a tenant_id that is NULL on purpose in some rows: the audit log records the
# operator's gateway-wide actions too (tiers, admin users, tokens, roles), which belong to no
# tenant; every entry about a tenant's data carries its tenant.
MIXED = {"audit_logs"}

# The analytics rollups carry a tenant_id but '*' marks the gateway-wide level's rows (m0026).
SHARED_ROLLUPS = {"analytics_minute", "analytics_hour", "analytics_day"}


def _tables(conn: Any) -> set[str]:
    if dialect.of(conn) == dialect.POSTGRESQL:
        rows = conn.execute("""SELECT table_name FROM information_schema.tables
                                WHERE table_schema = current_schema()
                                  AND table_type = 'BASE TABLE'""").fetchall()
    else:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def _tenant_column(conn: Any, table: str) -> tuple[bool, bool]:
    """(the table has a tenant_id column, it is NOT NULL)."""
    if dialect.of(conn) == dialect.POSTGRESQL:
        row = conn.execute("""SELECT is_nullable FROM information_schema.columns
                               WHERE table_schema = current_schema() AND table_name = ?
                                 AND column_name = 'tenant_id'""", (table,)).fetchone()
        return (row is not None, row is not None and row[0] == "NO")
    for col in conn.execute(f"PRAGMA table_info('{table}')").fetchall():
        if col[1] == "tenant_id":
            return True, bool(col[3]) or bool(col[5])  # NOT NULL, or part of the primary key
    return False, False


def _references_tenants(conn: Any, table: str) -> bool:
    if dialect.of(conn) == dialect.POSTGRESQL:
        row = conn.execute("""
            SELECT 1 FROM information_schema.key_column_usage k
              JOIN information_schema.referential_constraints r
                ON r.constraint_name = k.constraint_name AND r.constraint_schema = k.table_schema
              JOIN information_schema.constraint_column_usage u
                ON u.constraint_name = r.unique_constraint_name
               AND u.constraint_schema = r.unique_constraint_schema
             WHERE k.table_schema = current_schema() AND k.table_name = ?
               AND k.column_name = 'tenant_id' AND u.table_name = 'tenants'""",
                           (table,)).fetchone()
        return row is not None
    return any(fk[2] == "tenants" and fk[3] == "tenant_id"
               for fk in conn.execute(f"PRAGMA foreign_key_list('{table}')").fetchall())


def _world(conn: sqlite3.Connection) -> dict[str, str]:
    """A tenant with a channel, a conversation, an activity with a delivery and an attempt, an
    inbound verification and a health check: a row in each table the three writers fill."""
    t = make_tenant(conn)
    ch = make_channel(conn, t.id)
    conv = make_conversation(conn, t.id, ch.id)
    at = now()
    conn.execute("""INSERT INTO activities (id, tenant_id, conversation_id, seq, type, sender,
                        inserted_at, updated_at) VALUES ('a1', ?, ?, 1, 'message', '{}', ?, ?)""",
                 (t.id, conv.id, at, at))
    conn.execute("""INSERT INTO deliveries (id, activity_id, channel_id, tenant_id,
                        conversation_id, status, inserted_at, updated_at)
                    VALUES ('d1', 'a1', ?, ?, ?, 'pending', ?, ?)""",
                 (ch.id, t.id, conv.id, at, at))
    queue.record_attempt(conn, "d1", at, False, "will retry", "503", 12)
    channels.note_inbound(conn, ch.id, at)
    channels.note_inbound(conn, ch.id, at, refusal="bad signature")
    maintenance.mark_unhealthy(conn, ch.id, "1970-01-01T00:00:00Z", at)
    return {"tenant": t.id, "channel": ch.id}


def test_every_tenant_owned_table_carries_a_non_null_tenant_id(db: Database) -> None:
    def check(conn: sqlite3.Connection) -> None:
        tables = _tables(conn)
        assert {"tenants", "channels", "deliveries", "delivery_attempts"} <= tables
        missing, nullable, unreferenced = [], [], []
        for table in sorted(tables - GLOBAL):
            has, not_null = _tenant_column(conn, table)
            if not has:
                missing.append(table)
            elif not not_null and table not in MIXED:
                nullable.append(table)
            elif table not in SHARED_ROLLUPS and not _references_tenants(conn, table):
                unreferenced.append(table)
        assert missing == [], f"tenant-owned tables without tenant_id (or add to GLOBAL): {missing}"
        assert nullable == [], f"tenant_id may be NULL in {nullable}"
        # and references tenants (deleting a tenant deletes its rows)
        assert unreferenced == [], f"tenant_id does not reference tenants in {unreferenced}"

    db.read_sync(check)


def test_the_writers_fill_tenant_id(db: Database) -> None:
    world = db.write_sync(_world)

    def rows(conn: sqlite3.Connection) -> dict[str, list[Any]]:
        return {table: [r[0] for r in conn.execute(f"SELECT tenant_id FROM {table}").fetchall()]
                for table in ("channel_health_checks", "channel_inbound_status",
                              "delivery_attempts")}

    assert db.read_sync(rows) == {"channel_health_checks": [world["tenant"]],
                                  "channel_inbound_status": [world["tenant"]],
                                  "delivery_attempts": [world["tenant"]]}


def test_m0024_fills_tenant_id_in_rows_made_before_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A database made by the version before m0024 (on this run's backend) with rows in the three
    tables: the migration keeps every row and fills its tenant from the channel or delivery."""
    every = migrations._modules()
    before = [n for n in every if n < "m0024_tenant_id_everywhere"]
    monkeypatch.setattr(migrations, "_modules", lambda: before)
    old = postgres.store_database(tmp_path)
    assert old.start(prepare=migrations.apply) == before

    def fill(conn: sqlite3.Connection) -> dict[str, str]:
        out = {}
        for name in ("one", "two"):
            t = make_tenant(conn, name)
            ch = make_channel(conn, t.id)
            conv = make_conversation(conn, t.id, ch.id)
            at = now()
            conn.execute("""INSERT INTO activities (id, tenant_id, conversation_id, seq, type,
                                sender, inserted_at, updated_at)
                            VALUES (?, ?, ?, 1, 'message', '{}', ?, ?)""",
                         (f"a-{name}", t.id, conv.id, at, at))
            conn.execute("""INSERT INTO deliveries (id, activity_id, channel_id, tenant_id,
                                conversation_id, status, inserted_at, updated_at)
                            VALUES (?, ?, ?, ?, ?, 'failed', ?, ?)""",
                         (f"d-{name}", f"a-{name}", ch.id, t.id, conv.id, at, at))
            for n in (1, 2):
                conn.execute("""INSERT INTO delivery_attempts (delivery_id, attempt, at, ok,
                                    status) VALUES (?, ?, ?, 0, 'will retry')""",
                             (f"d-{name}", n, at))
            conn.execute("""INSERT INTO channel_inbound_status (channel_id, last_verification_at)
                            VALUES (?, ?)""", (ch.id, at))
            conn.execute("""INSERT INTO channel_health_checks (id, channel_id, status,
                                checked_at, inserted_at) VALUES (?, ?, 'healthy', ?, ?)""",
                         (f"h-{name}", ch.id, at, at))
            out[ch.id] = t.id
        return out

    owners = old.write_sync(fill)
    old.close()
    monkeypatch.setattr(migrations, "_modules", lambda: every)
    new = postgres.store_database(tmp_path)
    try:
        assert "m0024_tenant_id_everywhere" in new.start(prepare=migrations.apply)

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            return {
                "health": sorted(tuple(r) for r in conn.execute(
                    "SELECT channel_id, tenant_id FROM channel_health_checks").fetchall()),
                "inbound": sorted(tuple(r) for r in conn.execute(
                    "SELECT channel_id, tenant_id FROM channel_inbound_status").fetchall()),
                "attempts": sorted(tuple(r) for r in conn.execute(
                    """SELECT d.channel_id, a.tenant_id, a.attempt FROM delivery_attempts a
                         JOIN deliveries d ON d.id = a.delivery_id""").fetchall()),
            }

        got = new.read_sync(read)
        assert got["health"] == sorted(owners.items())
        assert got["inbound"] == sorted(owners.items())
        assert got["attempts"] == sorted((c, t, n) for c, t in owners.items() for n in (1, 2))
        # and the writers go on from there (delivery_attempts' ids continue after the old ones)
        new.write_sync(lambda c: queue.record_attempt(c, "d-one", now(), True, "sent", None, 5))
        assert new.read_sync(lambda c: c.execute(
            "SELECT count(*) FROM delivery_attempts WHERE tenant_id IS NOT NULL").fetchone()[0]) == 5
    finally:
        new.close()
