"""The store as the log between worker processes: the feed (triggers and appends, commit
order, pruning) and the leases (take, renew, expire, a dead owner, release)."""

from __future__ import annotations

from store import activities, feed, leases, tenants
from store.db import Database

from .conftest import make_channel, make_conversation, make_tenant, now


def test_activities_and_tenant_changes_reach_the_feed_by_trigger(db: Database) -> None:
    def tx(conn):  # type: ignore[no-untyped-def]
        t = make_tenant(conn)
        ch = make_channel(conn, t.id)
        conv = make_conversation(conn, t.id, ch.id)
        start = feed.last_id(conn)
        a = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u", now=now(),
                              text="hi")
        tenants.update(conn, t.id, {"status": "inactive"}, now())
        feed.append(conn, "d", conv.id, {"delivery_id": "d1", "status": "sent"})
        return start, a, t, conv

    start, a, t, conv = db.write_sync(tx)
    events = db.read_sync(feed.after, start, 10)
    assert [e.id for e in events] == list(range(start + 1, start + 4))  # commit order, no gaps
    assert events[0].kind == "a" and events[0].topic == conv.id and events[0].activity == a
    assert (events[1].kind, events[1].ref, events[1].data) == ("i", t.id, {"status": "inactive"})
    assert events[2].data == {"delivery_id": "d1", "status": "sent"}


def test_a_rolled_back_job_leaves_no_gap_and_prune_keeps_the_tail(db: Database) -> None:
    db.write_sync(lambda c: feed.append(c, "h", "channel_health", {"n": 1}))

    def fails(conn):  # type: ignore[no-untyped-def]
        feed.append(conn, "h", "channel_health", {"n": 2})
        raise RuntimeError("rolled back")

    try:
        db.write_sync(fails)
    except RuntimeError:
        pass
    db.write_sync(lambda c: feed.append(c, "h", "channel_health", {"n": 3}))
    events = db.read_sync(feed.after, 0, 10)
    assert [e.data["n"] for e in events] == [1, 3]
    assert events[1].id == events[0].id + 1  # SQLite: AUTOINCREMENT; PostgreSQL: m0023
    assert db.write_sync(feed.prune, events[0].id) == 1
    assert [e.id for e in db.read_sync(feed.after, 0, 10)] == [events[1].id]
    assert db.read_sync(feed.last_id) == events[1].id  # never reused after a prune


def test_leases_are_held_renewed_taken_when_expired_or_dead_and_released(db: Database) -> None:
    take = leases.take
    assert db.write_sync(take, "leader", "h:1:0", 100.0, 10.0)
    assert not db.write_sync(take, "leader", "h:2:1", 105.0, 10.0)  # held
    assert db.write_sync(take, "leader", "h:1:0", 108.0, 10.0)  # renewed until 118
    assert not db.write_sync(take, "leader", "h:2:1", 115.0, 10.0)
    assert db.write_sync(take, "leader", "h:2:1", 118.5, 10.0)  # expired: taken
    assert db.read_sync(leases.holder, "leader") == ("h:2:1", 128.5)
    # Its owner is known dead: taken at once.
    assert db.write_sync(take, "leader", "h:3:2", 119.0, 10.0, lambda owner: owner == "h:2:1")
    assert not db.write_sync(leases.release, "leader", "h:2:1")  # not the holder
    assert db.write_sync(leases.release, "leader", "h:3:2")
    assert db.read_sync(leases.holder, "leader") is None


def test_job_runs_count_across_owners(db: Database) -> None:
    db.write_sync(leases.job_ran, "health", "2026-01-01T00:00:00.000000Z", 11)
    db.write_sync(leases.job_ran, "health", "2026-01-01T00:00:05.000000Z", 22)
    assert db.read_sync(leases.job_last_runs) == {"health": "2026-01-01T00:00:05.000000Z"}
    assert db.read_sync(lambda c: c.execute(
        "SELECT runs, pid FROM job_runs WHERE name = 'health'").fetchone()[:]) == (2, 22)
