"""Routing queries: the channels an activity fans out to (rules' validation: tests/unit/domain)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import migrations, routing
from store.connect import connect
from store.models import Channel

from .conftest import make_channel, make_tenant, now


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "r.db")
    migrations.apply(c)
    yield c
    c.close()


@pytest.fixture
def world(conn: sqlite3.Connection) -> dict[str, Channel | str]:
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


def _rule(conn, w, name, source, targets, enabled=True):
    return routing.insert(conn, tenant_id=w["tenant"], name=name, source_channel_id=source.id,
                          target_channel_ids=[t.id for t in targets], enabled=enabled, now=now())


def test_delivery_targets_one_hop_enabled_active(conn, world) -> None:
    a, b, c, d = world["a"], world["b"], world["c"], world["d"]
    _rule(conn, world, "ab", a, [b, world["in"]])
    _rule(conn, world, "bc", b, [c])            # second hop: not followed
    _rule(conn, world, "ad", a, [d], enabled=False)
    targets = routing.delivery_targets(conn, a, outbound_types=frozenset({"webhook"}))
    assert {t.id for t in targets} == {a.id, b.id}
    assert {t.id for t in routing.delivery_targets(
        conn, a, outbound_types=frozenset({"webhook"}), exclude_channel_id=a.id)} == {b.id}
