"""Migrations apply on an empty file, are recorded, and leave the schema DESIGN §3 asks for."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store import migrations
from store.connect import connect
from store.db import Database

CORE_TABLES = {
    "tenants", "channels", "conversations", "activities", "deliveries", "routing_rules",
    "audit_logs", "channel_health_checks", "admin_users", "tenant_users", "admin_tokens",
}


def test_migrations_apply_on_an_empty_file_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    conn = connect(path)
    try:
        applied = migrations.apply(conn)
        assert applied and applied[0] == "m0001_initial"
        assert applied == sorted(applied)
        assert migrations.applied(conn) == applied
        recorded = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?",
            (migrations.MIGRATION_SET,))]
        assert sorted(recorded) == applied
        # A second run finds nothing pending and changes nothing.
        assert migrations.apply(conn) == []
        assert not conn.in_transaction
    finally:
        conn.close()


def test_migration_numbers_are_unique() -> None:
    """Two branches that both add "the next" migration must not land the same number."""
    numbers = [name.split("_", 1)[0] for name in migrations.known()]
    assert len(numbers) == len(set(numbers)), numbers


def test_database_start_applies_migrations(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    applied = db.start(prepare=migrations.apply)
    try:
        assert "m0001_initial" in applied
        names = db.read_sync(lambda c: {r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")})
        assert CORE_TABLES <= names
    finally:
        db.close()
    again = Database(tmp_path / "x.db")
    try:
        assert again.start(prepare=migrations.apply) == []
    finally:
        again.close()


@pytest.fixture
def conn(tmp_path: Path):
    c = connect(tmp_path / "s.db")
    migrations.apply(c)
    yield c
    c.close()


def test_schema_tables(conn: sqlite3.Connection) -> None:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert CORE_TABLES <= names
    cols = {r[1] for r in conn.execute("PRAGMA table_info(deliveries)")}
    assert {"status", "attempts", "next_attempt_at", "leased_until", "claim_token", "last_error",
            "provider_message_id", "sent_at", "delivered_at", "read_at"} <= cols
    act = {r[1] for r in conn.execute("PRAGMA table_info(activities)")}
    assert {"seq", "source_channel_id", "external_id", "idempotency_key"} <= act
    assert "sender_key" in {r[1] for r in conn.execute("PRAGMA table_info(conversations)")}


def test_partial_unique_indexes(conn: sqlite3.Connection) -> None:
    idx = {r[0]: r[1] for r in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    for name, where in (
        ("activities_idempotency", "idempotency_key IS NOT NULL"),
        ("activities_external", "external_id IS NOT NULL"),
        ("conversations_open_thread", "status = 'active'"),
    ):
        assert name in idx, name
        assert "UNIQUE" in idx[name].upper() and where in idx[name]
    partial = {r[1]: r[4] for r in conn.execute("PRAGMA index_list(activities)")}
    assert partial["activities_idempotency"] == 1  # the "partial" flag


def test_pragmas_wal_and_foreign_keys(conn: sqlite3.Connection, tmp_path: Path) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    ro = connect(tmp_path / "s.db", readonly=True)
    try:
        assert ro.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.OperationalError):
            ro.execute("DELETE FROM tenants")
    finally:
        ro.close()


def test_foreign_keys_are_enforced(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO conversations (id, tenant_id, channel_id, inserted_at, updated_at) "
            "VALUES ('c', 'no-such-tenant', 'no-such-channel', 'x', 'x')")


def test_synchronous_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        connect(tmp_path / "y.db", synchronous="sometimes")
    full = connect(tmp_path / "y.db", synchronous="FULL")
    try:
        assert full.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        full.close()
