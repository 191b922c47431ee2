"""Routing queries: the channels an activity fans out to, the name and channel look-ups that
rules' validation uses (the validation itself and its messages: tests/unit/domain)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import migrations, routing
from store.connect import connect
from store.models import Channel

from .conftest import make_rule, routing_world


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "r.db")
    migrations.apply(c)
    yield c
    c.close()


@pytest.fixture
def world(conn: sqlite3.Connection) -> dict[str, Channel | str]:
    return routing_world(conn)


def _rule(conn, w, name, source, targets, enabled=True):
    return make_rule(conn, w["tenant"], name, source, targets, enabled)


def test_delivery_targets_one_hop_enabled_active(conn, world) -> None:
    a, b, c, d = world["a"], world["b"], world["c"], world["d"]
    _rule(conn, world, "ab", a, [b, world["in"]])
    _rule(conn, world, "bc", b, [c])            # second hop: not followed
    _rule(conn, world, "ad", a, [d], enabled=False)
    targets = routing.delivery_targets(conn, a, outbound_types=frozenset({"webhook"}))
    assert {t.id for t in targets} == {a.id, b.id}
    assert {t.id for t in routing.delivery_targets(
        conn, a, outbound_types=frozenset({"webhook"}), exclude_channel_id=a.id)} == {b.id}


def test_name_taken_per_tenant_excluding_a_rule(conn, world) -> None:
    ab = _rule(conn, world, "ab", world["a"], [world["b"]])
    assert routing.name_taken(conn, world["tenant"], "ab")
    assert not routing.name_taken(conn, world["tenant"], "ab", exclude_rule_id=ab.id)
    assert not routing.name_taken(conn, world["tenant"], "other")
    assert not routing.name_taken(conn, world["foreign"].tenant_id, "ab")


def test_channel_modes_only_the_tenants_channels(conn, world) -> None:
    a, out, foreign = world["a"], world["out"], world["foreign"]
    assert routing.channel_modes(conn, world["tenant"], [a.id, out.id, foreign.id]) == {
        a.id: ("a", "duplex"), out.id: ("out-only", "outbound")}
    assert routing.channel_modes(conn, world["tenant"], []) == {}
