"""Analytics rollups (store/analytics.py): what the write path and the job count, the rollup job's folds
(idempotent, and the same figures before and after), and the report over them. Real database
files; every time is passed in."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import activities, analytics, channels, conversations, migrations, queue, tenants
from store.connect import connect

T0 = "2026-01-01T00:00:00.000000Z"
E0 = analytics.epoch(T0)


def at(seconds: float) -> str:
    return queue._shift(T0, seconds)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "a.db")
    migrations.apply(c)
    yield c
    c.close()


def _world(conn: sqlite3.Connection, name: str = "t") -> dict[str, Any]:
    t = tenants.create(conn, name=name, api_key_hash=name, api_key_hint="x", now=T0)
    web = channels.create(conn, tenant_id=t.id, name="web", type="websocket", mode="duplex",
                          config={}, transformations=[], secret_hash="s", secret_enc="e", now=T0)
    hook = channels.create(conn, tenant_id=t.id, name="hook", type="webhook", mode="duplex",
                           config={"url": "http://x"}, transformations=[], secret_hash="s",
                           secret_enc="e", now=T0)
    conv = conversations.create(conn, tenant_id=t.id, channel_id=web.id, now=T0)
    return {"tenant": t.id, "web": web.id, "hook": hook.id, "conv": conv.id}


def _traffic(conn: sqlite3.Connection, w: dict[str, Any], minutes: int = 150) -> None:
    """Each minute: one activity in (from the hook), one out, delivered to the hook — sent
    after 0.2 s and delivered 3 s later, or failing (every fifth) for good."""
    for m in range(minutes):
        t = m * 60
        activities.insert(conn, tenant_id=w["tenant"], conversation_id=w["conv"], sender="u",
                          now=at(t), source_channel_id=w["hook"])
        act = activities.insert(conn, tenant_id=w["tenant"], conversation_id=w["conv"],
                                sender="agent", now=at(t + 1))
        queue.enqueue(conn, act, [w["hook"]], at(t + 1))
        (d,) = queue.claim(conn, at(t + 1), 60, 1)
        assert d.claim_token
        if m % 5 == 4:
            queue.fail(conn, d.id, d.claim_token, at(t + 2), "HTTP 503 from "
                       "https://x/hook?id=0f0e7b52-3f4c-4a35-9b8e-7c0e6d2e7f11",
                       retryable=False)
        else:
            sent = queue.complete(conn, d.id, d.claim_token, at(t + 1.2))
            assert sent is not None
            queue.apply_receipt(conn, sent, "delivered", at(t + 4.2), None, at(t + 4.2))


def test_the_write_path_counts_activities_and_outcomes(conn: sqlite3.Connection) -> None:
    """Outcomes are counted on the delivery path; activities by the job from the feed — and,
    until it ran, by the report itself from the same feed events: the figures are the same
    before and after the job."""
    w = _world(conn)
    _traffic(conn, w, minutes=60)
    assert conn.execute("SELECT count(*) FROM analytics_minute WHERE key IN ('in', 'out')"
                        ).fetchone()[0] == 0  # nothing on the activity write path
    uncounted = analytics.report(conn, E0, E0 + 3600, 60, tenant_id=w["tenant"])
    read, complete = analytics.count_activities(conn)  # feed ids: the tenant's event too
    assert read >= 120 and complete
    assert analytics.count_activities(conn) == (0, True)  # counted once
    r = analytics.report(conn, E0, E0 + 3600, 60, tenant_id=w["tenant"])
    assert r == uncounted
    assert r["activities"] == {"in": [1] * 60, "out": [1] * 60}
    assert sum(r["deliveries"]["sent"]) == 48 and sum(r["deliveries"]["failed"]) == 12
    assert sum(r["deliveries"]["delivered"]) == 48
    assert r["latency"]["sent"] == {"count": 48, "p50": 250.0, "p90": 250.0, "p99": 250.0}
    assert r["latency"]["delivered"]["p50"] == 5000.0
    assert r["latency"]["read"]["count"] == 0 and r["latency"]["read"]["p99"] is None
    # Ids in an error are masked, so one reason ranks as one.
    assert r["failures"] == [{"reason": "HTTP 503 from https://x/hook?id=…", "count": 12}]
    assert r["conversations"][0]["conversation_id"] == w["conv"]
    assert r["conversations"][0]["activities"] == 120
    assert r["channels"][w["hook"]]["in"] == 60 and r["channels"][w["web"]]["out"] == 60
    # Another tenant's figures are its own.
    other = _world(conn, "other")
    empty = analytics.report(conn, E0, E0 + 3600, 60, tenant_id=other["tenant"])
    assert sum(empty["activities"]["in"]) == 0 and not empty["conversations"]


def test_a_rolled_back_write_counts_nothing(conn: sqlite3.Connection) -> None:
    w = _world(conn)
    conn.execute("SAVEPOINT s")
    activities.insert(conn, tenant_id=w["tenant"], conversation_id=w["conv"], sender="u", now=T0)
    conn.execute("ROLLBACK TO s")
    conn.execute("RELEASE s")
    analytics.fold(conn, E0 + 60)
    assert conn.execute("SELECT count(*) FROM analytics_minute").fetchone()[0] == 0
    assert analytics.report(conn, E0, E0 + 3600, 60)["activities"]["out"] == [0] * 60


def _rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for t in ("analytics_minute", "analytics_hour", "analytics_day")
            for r in conn.execute(f"SELECT '{t}', * FROM {t} ORDER BY 2, 3, 4, 5, 6")]


def test_fold_is_idempotent_and_changes_no_figure(conn: sqlite3.Connection) -> None:
    w = _world(conn)
    _traffic(conn, w, minutes=150)
    other = _world(conn, "other")
    _traffic(conn, other, minutes=30)
    now = E0 + 2 * 86400 + 600  # two days later: the first day is complete
    scopes = [{"tenant_id": w["tenant"]}, {}, {"tenant_id": w["tenant"], "channel_id": w["hook"]},
              {"channel_id": other["web"]}]
    every = [analytics.report(conn, E0, E0 + 86400, step, **scope)  # type: ignore[arg-type]
             for step in (3600, 86400) for scope in scopes]
    before = every[::len(scopes)]
    first = analytics.fold(conn, now)
    assert first["hours_until"] == now - now % 3600 and first["days_until"] == E0 + 2 * 86400
    assert first["counted"] >= 360
    rows = _rows(conn)
    assert analytics.fold(conn, now) == first | {"dropped": 0, "counted": 0}
    assert _rows(conn) == rows  # a second run changes nothing
    # The gateway-wide and tenant-wide reports now read the folded levels (``*``): the same
    # figures as the channels' rows gave.
    assert conn.execute("SELECT count(*) FROM analytics_day WHERE tenant_id = '*'"
                        ).fetchone()[0] > 0
    assert [analytics.report(conn, E0, E0 + 86400, step, **scope)  # type: ignore[arg-type]
            for step in (3600, 86400) for scope in scopes] == every
    gateway = every[1]
    assert sum(gateway["activities"]["out"]) == 180 and len(gateway["conversations"]) == 2
    after = [analytics.report(conn, E0, E0 + 86400, step, tenant_id=w["tenant"])
             for step in (3600, 86400)]
    assert after == before
    assert sum(after[0]["activities"]["out"]) == 150 and after[1]["activities"]["out"] == [150]
    # Hours and days now come from the folded tables: dropping the minutes changes nothing.
    conn.execute("DELETE FROM analytics_minute")
    assert analytics.report(conn, E0, E0 + 86400, 3600, tenant_id=w["tenant"]) == before[0]


def test_a_late_write_is_folded_on_the_next_run(conn: sqlite3.Connection) -> None:
    w = _world(conn)
    _traffic(conn, w, minutes=10)
    analytics.fold(conn, E0 + 3600 + analytics.SETTLE)
    # A slow request committed after the fold, stamped with a time in the folded hour.
    activities.insert(conn, tenant_id=w["tenant"], conversation_id=w["conv"], sender="u",
                      now=at(30))
    analytics.fold(conn, E0 + 3600 + analytics.SETTLE + 60)  # the job's next run
    r = analytics.report(conn, E0, E0 + 3600, 3600, tenant_id=w["tenant"])
    assert r["activities"]["out"] == [11]
    # Later runs leave folded buckets alone (no refold every minute).
    conn.execute("DELETE FROM analytics_minute")
    analytics.fold(conn, E0 + 2 * 3600 + 2 * analytics.SETTLE)
    assert analytics.report(conn, E0, E0 + 3600, 3600, tenant_id=w["tenant"]) == r


def test_old_minutes_and_hours_are_dropped(conn: sqlite3.Connection) -> None:
    w = _world(conn)
    _traffic(conn, w, minutes=5)
    result = analytics.fold(conn, E0 + 15 * 86400)
    assert result["dropped"] > 0
    assert conn.execute("SELECT count(*) FROM analytics_minute").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM analytics_hour").fetchone()[0] == 0
    day = analytics.report(conn, E0, E0 + 86400, 86400, tenant_id=w["tenant"])
    assert day["activities"]["in"] == [5]
    # The day's conversations went too; its busiest are kept (``top``).
    assert conn.execute("SELECT count(*) FROM analytics_day WHERE kind = 'conversation'"
                        ).fetchone()[0] == 0
    assert [(c["conversation_id"], c["activities"]) for c in day["conversations"]] == [
        (w["conv"], 10)]


def test_the_busiest_conversations_of_a_folded_day_are_its_top(conn: sqlite3.Connection) -> None:
    w = _world(conn)
    convs = [conversations.create(conn, tenant_id=w["tenant"], channel_id=w["web"], now=T0).id
             for _ in range(analytics.TOP + 5)]
    for i, conv in enumerate(convs):  # conversation i gets i + 1 activities
        for _ in range(i + 1):
            activities.insert(conn, tenant_id=w["tenant"], conversation_id=conv, sender="u",
                              now=T0)
    before = analytics.report(conn, E0, E0 + 86400, 86400, tenant_id=w["tenant"], top=5)
    analytics.fold(conn, E0 + 5 * 86400)
    after = analytics.report(conn, E0, E0 + 86400, 86400, tenant_id=w["tenant"], top=5)
    assert after["conversations"] == before["conversations"]
    assert [c["activities"] for c in after["conversations"]] == [15, 14, 13, 12, 11]
    kept = conn.execute("SELECT count(*) FROM analytics_day WHERE kind = 'top' "
                        "AND tenant_id <> '*'").fetchone()[0]
    assert kept == analytics.TOP
    # The gateway's own busiest of the day: the same ranking, from its ``top`` level.
    everyone = analytics.report(conn, E0, E0 + 86400, 86400, top=5)
    assert everyone["conversations"] == after["conversations"]
    assert conn.execute("SELECT count(*) FROM analytics_day WHERE kind = 'top' "
                        "AND tenant_id = '*'").fetchone()[0] == analytics.TOP


def test_percentiles_of_a_histogram() -> None:
    assert analytics.percentiles({}) == {"p50": None, "p90": None, "p99": None}
    hist = {0: 90, 5: 9, len(analytics.LATENCY_BOUNDS): 1}
    assert analytics.percentiles(hist) == {"p50": 100.0, "p90": 100.0, "p99": 5000.0}
    assert analytics.latency_index(0) == 0 and analytics.latency_index(10**12) == 14


def test_latency_over_days_counts_every_delivery_in_them(conn: sqlite3.Connection) -> None:
    """A week not aligned on days: the latency histogram covers its whole days, so it counts
    every delivery the series count (none lost in a partial first day)."""
    w = _world(conn)
    _traffic(conn, w, minutes=150)
    analytics.fold(conn, E0 + 3 * 86400)
    start = E0 + 3600  # an hour into the day of the traffic (00:00–02:30)
    r = analytics.report(conn, start, start + 7 * 86400, 3600, tenant_id=w["tenant"])
    assert sum(r["deliveries"]["sent"]) == 72  # 01:00–02:30
    assert r["latency"]["sent"]["count"] == 120  # the whole day
