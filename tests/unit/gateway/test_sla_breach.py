"""SLA targets (docs/admin.md#sla-tiers): the rollup job checks each newly folded hour against
the targets of the tenants' tiers and raises the tenant's alert webhook (``sla_breach``) per
channel that missed one — once per hour, whatever how often it runs. Real database file; the
clock is passed in."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.workers import rollup
from store import activities, analytics, channels, conversations, migrations, queue, tenants, tiers
from store.connect import connect

T0 = "2026-01-01T00:00:00.000000Z"
E0 = analytics.epoch(T0)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "s.db")
    migrations.apply(c)
    yield c
    c.close()


def _tenant(conn: sqlite3.Connection, name: str, tier: str, url: str | None,
            failed: int, sent_after: float = 0.2) -> str:
    t = tenants.create(conn, name=name, api_key_hash=name, api_key_hint="x", now=T0,
                       alert_webhook_url=url)
    ch = channels.create(conn, tenant_id=t.id, name="hook", type="webhook", mode="duplex",
                         config={"url": "http://x"}, transformations=[], secret_hash="s",
                         secret_enc="e", now=T0)
    found = tiers.by_name(conn, tier)
    assert found is not None
    tiers.assign(conn, t.id, found.id, T0)
    conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=T0)
    for i in range(30):  # 30 outcomes in the first hour, ``failed`` of them failures
        at = queue._shift(T0, 60 * i)
        act = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u", now=at)
        queue.enqueue(conn, act, [ch.id], at)
        (d,) = queue.claim(conn, at, 60, 1)
        assert d.claim_token
        if i < failed:
            queue.fail(conn, d.id, d.claim_token, at, "HTTP 503", retryable=False)
        else:
            queue.complete(conn, d.id, d.claim_token, queue._shift(at, sent_after))
    return ch.id


def _alerts(conn: sqlite3.Connection) -> list[dict[str, object]]:
    return [json.loads(r[0]) for r in conn.execute("SELECT body FROM alerts WHERE event = ?",
                                                   (rollup.EVENT,))]


def test_a_missed_target_raises_one_alert_per_channel_and_hour(conn: sqlite3.Connection) -> None:
    missed = _tenant(conn, "missed", "priority", "https://ops.example/a", failed=3)
    slow = _tenant(conn, "slow", "standard", "https://ops.example/b", failed=0, sent_after=45)
    _tenant(conn, "fine", "priority", "https://ops.example/c", failed=0)
    _tenant(conn, "free", "free", "https://ops.example/d", failed=20)  # no targets
    _tenant(conn, "quiet", "priority", None, failed=10)  # no alert webhook
    assert rollup.run_tx(conn, E0 + 3600 + analytics.SETTLE)["alerts"] == 2
    by_channel = {a["channel_id"]: a for a in _alerts(conn)}
    assert by_channel.keys() == {missed, slow}
    a = by_channel[missed]
    assert a["event"] == "sla_breach" and a["tier"] == "priority" and a["deliveries"] == 30
    assert a["success_rate"] == 0.9 and a["target_success_rate"] == 0.99
    assert a["missed"] == ["success_rate"] and a["hour"] == T0
    assert by_channel[slow]["missed"] == ["sent_p90_ms"]
    assert by_channel[slow]["sent_p90_ms"] == 60000.0
    # The job's next runs: the hour was checked, no second alert.
    for later in (60, 120, 3600):
        rollup.run_tx(conn, E0 + 3600 + analytics.SETTLE + later)
    assert len(_alerts(conn)) == 2
