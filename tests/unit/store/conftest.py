"""Store fixtures: a migrated database file of its own per test, and helpers to make rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import channels, conversations, migrations, routing, tenants
from store.db import Database
from store.models import Channel, Conversation, RoutingRule, Tenant
from store.util import iso, new_id, utcnow
from tests.support import postgres


def now() -> str:
    return iso(utcnow())


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = postgres.store_database(tmp_path)  # SQLite, or PostgreSQL in that mode
    database.start(prepare=migrations.apply)
    yield database
    database.close()


def make_tenant(conn: sqlite3.Connection, name: str = "acme") -> Tenant:
    return tenants.create(conn, name=name, api_key_hash=new_id(), api_key_hint="cvk_…", now=now())


def make_channel(conn: sqlite3.Connection, tenant_id: str, name: str | None = None,
                 mode: str = "duplex", type: str = "webhook", status: str = "active") -> Channel:
    return channels.create(
        conn, tenant_id=tenant_id, name=name or f"ch-{new_id()[:8]}", type=type, mode=mode,
        config={}, transformations=[], secret_hash=new_id(), secret_enc="x", now=now(),
        status=status,
    )


def make_conversation(conn: sqlite3.Connection, tenant_id: str, channel_id: str,
                      status: str = "active") -> Conversation:
    return conversations.create(conn, tenant_id=tenant_id, channel_id=channel_id, now=now(),
                                status=status)


def routing_world(conn: sqlite3.Connection) -> dict[str, Channel | str]:
    """A tenant's channels a-d (duplex), an inbound-only and an outbound-only one, and another
    tenant's channel, for routing rules (store queries and the domain's validation)."""
    t = make_tenant(conn, "a")
    other = make_tenant(conn, "b")
    return {
        "tenant": t.id,
        "a": make_channel(conn, t.id, "a"), "b": make_channel(conn, t.id, "b"),
        "c": make_channel(conn, t.id, "c"), "d": make_channel(conn, t.id, "d"),
        "in": make_channel(conn, t.id, "in-only", mode="inbound"),
        "out": make_channel(conn, t.id, "out-only", mode="outbound"),
        "foreign": make_channel(conn, other.id, "theirs"),
    }


def make_rule(conn: sqlite3.Connection, tenant_id: str, name: str, source: Channel,
              targets: list[Channel], enabled: bool = True) -> RoutingRule:
    return routing.insert(conn, tenant_id=tenant_id, name=name, source_channel_id=source.id,
                          target_channel_ids=[t.id for t in targets], enabled=enabled, now=now())
