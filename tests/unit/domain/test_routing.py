"""Routing-rule validation (gateway/domain/routing.py): self-reference, tenant isolation, channel
modes, and BFS cycle detection over the tenant's enabled rules, excluding the rule being updated."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.domain import routing
from store import migrations
from store.connect import connect
from store.models import Channel
from tests.unit.store.conftest import make_channel, make_rule, routing_world


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "r.db")
    migrations.apply(c)
    yield c
    c.close()


@pytest.fixture
def world(conn: sqlite3.Connection) -> dict[str, Channel | str]:
    return routing_world(conn)


def _v(conn: sqlite3.Connection, w, source, targets, name="r", exclude=None):
    return routing.validate(conn, tenant_id=w["tenant"], name=name, source_channel_id=source,
                            target_channel_ids=targets, exclude_rule_id=exclude)


def _rule(conn, w, name, source, targets, enabled=True):
    return make_rule(conn, w["tenant"], name, source, targets, enabled)


def test_valid_rule(conn, world) -> None:
    assert _v(conn, world, world["a"].id, [world["b"].id, world["c"].id]) == {}


def test_required_fields_and_target_count(conn, world) -> None:
    errs = routing.validate(conn, tenant_id=world["tenant"], name=None, source_channel_id=None,
                            target_channel_ids=None)
    assert errs == {"name": ["can't be blank"], "source_channel_id": ["can't be blank"],
                    "target_channel_ids": ["can't be blank"]}
    assert _v(conn, world, world["a"].id, []) == {
        "target_channel_ids": ["should have at least 1 item(s)"]}
    many = [world["b"].id] * 21
    assert "should have at most 20 item(s)" in _v(conn, world, world["a"].id, many)["target_channel_ids"]


def test_name_unique_per_tenant(conn, world) -> None:
    rule = _rule(conn, world, "r", world["a"], [world["b"]])
    assert _v(conn, world, world["c"].id, [world["d"].id], name="r") == {
        "name": ["has already been taken"]}
    # The rule itself keeps its name on update.
    assert _v(conn, world, world["a"].id, [world["c"].id], name="r", exclude=rule.id) == {}


def test_self_reference(conn, world) -> None:
    errs = _v(conn, world, world["a"].id, [world["b"].id, world["a"].id])
    assert "cannot include the source channel" in errs["target_channel_ids"]


def test_tenant_isolation_and_unknown_channels(conn, world) -> None:
    msg = "all channels must belong to the same tenant"
    assert _v(conn, world, world["a"].id, [world["foreign"].id]) == {"target_channel_ids": [msg]}
    assert _v(conn, world, world["foreign"].id, [world["a"].id]) == {"target_channel_ids": [msg]}
    assert _v(conn, world, world["a"].id, ["00000000-0000-4000-8000-000000000000"]) == {
        "target_channel_ids": [msg]}


def test_modes(conn, world) -> None:
    assert _v(conn, world, world["out"].id, [world["b"].id]) == {
        "source_channel_id": ["source channel is outbound-only and cannot receive inbound messages"]}
    errs = _v(conn, world, world["a"].id, [world["b"].id, world["in"].id])
    assert errs == {"target_channel_ids": [
        "these target channels are inbound-only and cannot deliver outbound: in-only"]}
    # An inbound source and an outbound target are fine.
    assert _v(conn, world, world["in"].id, [world["out"].id]) == {}


def test_direct_and_transitive_cycles(conn, world) -> None:
    a, b, c, d = world["a"], world["b"], world["c"], world["d"]
    _rule(conn, world, "ab", a, [b])
    _rule(conn, world, "bc", b, [c])
    cycle = {"target_channel_ids": ["would create a routing cycle"]}
    assert _v(conn, world, b.id, [a.id], name="ba") == cycle       # direct
    assert _v(conn, world, c.id, [a.id], name="ca") == cycle       # a→b→c→a
    assert _v(conn, world, c.id, [d.id], name="cd") == {}          # no way back to c
    assert _v(conn, world, d.id, [a.id], name="da") == {}          # d is not reachable from a


def test_disabled_rules_are_ignored(conn, world) -> None:
    a, b, c = world["a"], world["b"], world["c"]
    _rule(conn, world, "ab", a, [b], enabled=False)
    _rule(conn, world, "bc", b, [c])
    assert _v(conn, world, c.id, [a.id], name="ca") == {}


def test_the_rule_being_updated_is_excluded(conn, world) -> None:
    a, b, c = world["a"], world["b"], world["c"]
    ab = _rule(conn, world, "ab", a, [b])
    _rule(conn, world, "bc", b, [c])
    # Re-pointing ab to run c→a would be a cycle only through ab's old edge a→b, which is replaced.
    assert _v(conn, world, c.id, [a.id], name="ab", exclude=ab.id) == {}
    assert _v(conn, world, c.id, [a.id], name="new") == {"target_channel_ids": [
        "would create a routing cycle"]}


def test_cycle_check_is_per_tenant(conn, world) -> None:
    other = world["foreign"]
    t2 = other.tenant_id
    x = make_channel(conn, t2, "x")
    make_rule(conn, t2, "fx", other, [x])
    assert routing.validate(conn, tenant_id=t2, name="xf", source_channel_id=x.id,
                            target_channel_ids=[other.id]) == {
        "target_channel_ids": ["would create a routing cycle"]}
    assert _v(conn, world, world["a"].id, [world["b"].id]) == {}


def test_nul_in_name(conn, world) -> None:
    assert _v(conn, world, world["a"].id, [world["b"].id], name="\x00") == {"name": ["is invalid"]}


# -- the operations: audited, a tenant's scope, enabling re-validated ----------------------------
async def test_rule_operations(gw) -> None:  # type: ignore[no-untyped-def]
    from gateway.domain import NotFound, ValidationFailed
    from gateway.domain import channels as channel_ops
    from gateway.domain import routing as rule_ops
    from gateway.domain import tenants as tenant_ops
    from store import audit

    from .conftest import ADMIN

    tenant, _ = await tenant_ops.create(gw, ADMIN, name="t")
    other, _ = await tenant_ops.create(gw, ADMIN, name="o")
    a, b = [(await channel_ops.create(gw, ADMIN, tenant_id=tenant.id, name=n, type="webhook",
                                      config={"url": "http://127.0.0.1:9/x"}))[0] for n in "ab"]
    ab = await rule_ops.create(gw, ADMIN, tenant.id, rule_ops.RuleFields(
        name="ab", source_channel_id=a.id, target_channel_ids=[b.id], enabled=False))
    ba = await rule_ops.create(gw, ADMIN, tenant.id, rule_ops.RuleFields(
        name="ba", source_channel_id=b.id, target_channel_ids=[a.id]))
    with pytest.raises(ValidationFailed) as exc:  # enabling it would close a cycle
        await rule_ops.toggle(gw, ADMIN, ab.id)
    assert exc.value.fields == {"target_channel_ids": ["would create a routing cycle"]}
    with pytest.raises(NotFound):  # another tenant's rule: not found
        await rule_ops.update(gw, ADMIN, ab.id, rule_ops.RuleFields(name="x"), tenant_id=other.id)
    await rule_ops.delete(gw, ADMIN, ba.id, tenant_id=tenant.id)
    renamed = await rule_ops.update(gw, ADMIN, ab.id, rule_ops.RuleFields(name="renamed"))
    assert renamed.name == "renamed" and renamed.target_channel_ids == [b.id]
    await rule_ops.delete(gw, ADMIN, ab.id)
    items, _ = await gw.db.read(lambda c: audit.list_page(c, resource_id=ab.id))
    assert [i.action for i in reversed(items)] == ["create", "update", "delete"]  # no toggle
    assert items[1].changes["before"]["name"] == "ab" and items[1].changes["after"]["name"] == "renamed"
    with pytest.raises(NotFound):
        await rule_ops.delete(gw, ADMIN, ab.id)
