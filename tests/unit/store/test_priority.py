"""Delivery priority by SLA tier (store/queue.py ``claim``, docs/delivery.md#delivery-priority):
with the queue 10,000 deliveries behind across three tiers, the ``priority`` tenant's are all
sent before the ``free`` tenant's backlog drains, and the ``free`` tenant still progresses in
every batch. Real database file; the clock is passed in (one second per batch)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import activities, channels, conversations, migrations, queue, tenants, tiers
from store.connect import connect

T0 = "2026-01-01T00:00:00.000000Z"
BACKLOG = 10_000
BATCH = 32


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "p.db")
    migrations.apply(c)
    yield c
    c.close()


def _tenant(conn: sqlite3.Connection, name: str, tier: str | None) -> tuple[str, str]:
    t = tenants.create(conn, name=name, api_key_hash=name, api_key_hint="x", now=T0)
    ch = channels.create(conn, tenant_id=t.id, name="hook", type="webhook", mode="duplex",
                         config={"url": "http://x"}, transformations=[], secret_hash="s",
                         secret_enc="e", now=T0)
    if tier is not None:
        found = tiers.by_name(conn, tier)
        assert found is not None
        tiers.assign(conn, t.id, found.id, T0)
    conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=T0)
    return t.id, conv.id


def _backlog(conn: sqlite3.Connection, world: list[tuple[str, str, str]], n: int) -> list[str]:
    """``n`` deliveries due a millisecond apart from T0, the lowest tier's the oldest; their
    ids, oldest first."""
    conn.execute("BEGIN")
    ids = []
    for i in range(n):
        tenant_id, conv_id, channel_id = world[i * len(world) // n]
        at = queue._shift(T0, i / 1000)
        act = activities.insert(conn, tenant_id=tenant_id, conversation_id=conv_id, sender="u",
                                now=at, text=str(i))
        queue.enqueue(conn, act, [channel_id], at)
        ids.append(act.id)
    conn.execute("COMMIT")
    return ids


def _world(conn: sqlite3.Connection, tiers_: tuple[str | None, ...]) -> list[tuple[str, str, str]]:
    out = []
    for name, tier in zip(("free-co", "standard-co", "priority-co"), tiers_, strict=True):
        tenant_id, conv_id = _tenant(conn, name, tier)
        (ch,) = channels.for_tenant(conn, tenant_id)
        out.append((tenant_id, conv_id, ch.id))
    return out


def _drain(conn: sqlite3.Connection, activity_ids: list[str] | None = None) -> list[list[str]]:
    """Claim and send batch after batch, one second apart (from T0 + 10 s, when all are due):
    the tenant ids (or activity ids) of each batch."""
    batches = []
    second = 10
    while True:
        now = queue._shift(T0, second)
        claimed = queue.claim(conn, now, 60, BATCH)
        if not claimed:
            return batches
        for d in claimed:
            assert d.claim_token and queue.complete(conn, d.id, d.claim_token, now)
        batches.append([d.activity_id if activity_ids else d.tenant_id for d in claimed])
        second += 1


def test_higher_tiers_first_and_the_free_tier_still_progresses(conn: sqlite3.Connection) -> None:
    world = _world(conn, ("free", "standard", "priority"))
    free, standard, prio = (w[0] for w in world)
    _backlog(conn, world, BACKLOG)
    batches = _drain(conn)
    assert sum(map(len, batches)) == BACKLOG and all(len(b) == BATCH for b in batches[:-1])

    def last(tenant: str) -> int:
        return max(i for i, b in enumerate(batches) if tenant in b)

    # Every priority delivery is sent before the free backlog drains (and the standard ones
    # before the free ones too), though the free tenant's were the oldest.
    assert last(prio) < last(standard) < last(free)
    free_left = sum(b.count(free) for b in batches[last(prio) + 1:])
    assert free_left > 2000, free_left
    # Not starved: the free tenant has a delivery in every batch while it has any due.
    assert all(free in b for b in batches[:last(free) + 1])
    # Shares follow the tiers' priorities (20, 10, 0 → weights 21, 11, 1 of 32).
    first = batches[0]
    assert (first.count(prio), first.count(standard), first.count(free)) == (20, 10, 1) \
        or first.count(prio) >= 20


def test_without_tiers_oldest_due_first(conn: sqlite3.Connection) -> None:
    world = _world(conn, (None, None, None))
    ids = _backlog(conn, world, 300)
    batches = _drain(conn, ids)
    # Each batch holds the oldest due that are left, whoever's they are.
    assert [set(b) for b in batches] == [set(ids[i:i + BATCH]) for i in range(0, 300, BATCH)]


def test_shares() -> None:
    assert queue.shares([0, 10, 20], 32) == [(20, 20), (10, 10), (0, 1)]
    assert queue.shares([0, 20], 2) == [(20, 1), (0, 1)]
    assert queue.shares([0, 10, 20], 2) == [(20, 1), (10, 1)]
    assert queue.shares([0], 16) == [(0, 16)]


def test_a_level_with_nothing_due_leaves_its_share_to_the_others(conn: sqlite3.Connection) -> None:
    world = _world(conn, ("free", "standard", "priority"))
    _backlog(conn, world[:1], 40)  # only the free tenant has deliveries waiting
    now = queue._shift(T0, 10)
    assert len(queue.claim(conn, now, 60, 1)) == 1  # a batch smaller than the levels
    assert len(queue.claim(conn, now, 60, BATCH)) == BATCH
