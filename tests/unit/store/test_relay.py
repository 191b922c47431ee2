"""The event relay's cursor in the store (migration m0022_event_relay): a first start begins with
the oldest event still in the feed, the cursor only moves forward, and the look-ups the relay
needs (a conversation's tenant and channel, how far behind it is). SQLite and PostgreSQL."""

from __future__ import annotations

from store import activities, feed, relay
from store.db import Database

from .conftest import make_channel, make_conversation, make_tenant, now


def test_the_cursor_starts_at_the_oldest_event_and_only_moves_forward(db: Database) -> None:
    def tx(conn):  # type: ignore[no-untyped-def]
        t = make_tenant(conn)
        ch = make_channel(conn, t.id)
        conv = make_conversation(conn, t.id, ch.id)
        for i in range(3):
            activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u",
                              now=now(), text=f"m{i}")
        return t, ch, conv

    t, ch, conv = db.write_sync(tx)
    events = db.read_sync(feed.after, 0, 100)
    first = events[0].id
    assert db.write_sync(relay.start, 100.0) == first - 1  # nothing already in the feed is skipped
    assert db.write_sync(relay.start, 200.0) == first - 1  # a restart resumes at the cursor
    row = db.read_sync(relay.position)
    assert row is not None and (row["state"], row["published"]) == ("starting", 0)
    assert db.read_sync(relay.backlog, first - 1) == 3

    db.write_sync(relay.advance, events[-1].id, 3, 300.0)
    db.write_sync(relay.advance, first, 1, 301.0)  # a stale (lower) position never moves it back
    row = db.read_sync(relay.position)
    assert row is not None
    assert (row["last_id"], row["published"], row["state"]) == (events[-1].id, 3, "connected")
    assert db.read_sync(relay.backlog, events[-1].id) == 0

    db.write_sync(relay.set_state, "disconnected", "ConnectionRefusedError: x", 302.0)
    row = db.read_sync(relay.position)
    assert row is not None and (row["state"], row["error"]) == ("disconnected",
                                                                "ConnectionRefusedError: x")
    assert db.read_sync(relay.conversations, [conv.id, "missing"]) == {conv.id: (t.id, ch.id)}


def test_a_first_start_on_an_empty_feed_starts_after_its_last_id(db: Database) -> None:
    db.write_sync(lambda c: feed.append(c, "h", "channel_health", {"n": 1}))
    last = db.read_sync(feed.last_id)
    db.write_sync(feed.prune, last)
    assert db.write_sync(relay.start, 1.0) == last
