"""The event relay's cursor in the store (migration m0022_event_relay): a first start begins with
the oldest event still in the feed, the cursor only moves forward, and the look-ups the relay
needs (a conversation's tenant and channel, how far behind it is); conversation changes reach the
feed by triggers (m0025) and oversized events are counted. SQLite and PostgreSQL."""

from __future__ import annotations

import msgspec

from store import activities, conversations, feed, maintenance, relay
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

    db.write_sync(tx)
    events = db.read_sync(feed.after, 0, 100)
    first = events[0].id
    assert db.write_sync(relay.start, 100.0) == first - 1  # nothing already in the feed is skipped
    assert db.write_sync(relay.start, 200.0) == first - 1  # a restart resumes at the cursor
    row = db.read_sync(relay.position)
    assert row is not None and (row["state"], row["published"]) == ("starting", 0)
    # The tenant's creation (i, not published), the conversation's (c, m0025) and its activities.
    assert [e.kind for e in events] == ["i", "c", "a", "a", "a"]
    assert db.read_sync(relay.backlog, first - 1) == 4

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


def test_a_round_is_read_in_one_query_with_what_each_message_needs(db: Database) -> None:
    """relay.read: every kind in feed order (the cursor passes the unpublished ones), an
    activity encoded exactly as the API's Activity (its JSON columns kept as stored text), the
    conversation's tenant and channel for activities and delivery statuses, None for an activity
    deleted since or a conversation that is gone."""
    def tx(conn):  # type: ignore[no-untyped-def]
        t = make_tenant(conn)
        ch = make_channel(conn, t.id)
        conv, gone = make_conversation(conn, t.id, ch.id), make_conversation(conn, t.id, ch.id)
        start = feed.last_id(conn)
        kept = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u",
                                 now=now(), text="héllo", attachments=[{"url": "https://x/a"}],
                                 metadata={"n": 1.5, "s": "é\n"})
        deleted = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u",
                                    now=now(), text="gone")
        activities.insert(conn, tenant_id=t.id, conversation_id=gone.id, sender="u", now=now())
        feed.append(conn, "d", conv.id, {"delivery_id": "d1", "channel_id": ch.id})
        feed.append(conn, "h", "channel_health", {"n": 1})
        conn.execute("DELETE FROM activities WHERE id = ?", (deleted.id,))
        conn.execute("DELETE FROM conversations WHERE id = ?", (gone.id,))
        return t, ch, conv, start, kept

    t, ch, conv, start, kept = db.write_sync(tx)
    rows = db.read_sync(relay.read, start, 100)
    assert [r.kind for r in rows] == ["a", "a", "a", "d", "h"]
    assert [r.id for r in rows] == sorted(r.id for r in rows) and rows[0].id > start
    a, deleted, orphan, d, h = rows
    assert a.activity is not None
    assert msgspec.json.encode(a.activity) == msgspec.json.encode(kept)
    assert msgspec.json.decode(msgspec.json.encode(a.activity))["metadata"] == {"n": 1.5,
                                                                                "s": "é\n"}
    assert (a.tenant_id, a.channel_id, a.topic) == (t.id, ch.id, conv.id)
    assert deleted.activity is None and deleted.tenant_id == t.id
    assert orphan.tenant_id is None  # its conversation is gone: no message
    assert (d.tenant_id, d.channel_id) == (t.id, ch.id)
    assert d.data is not None and msgspec.json.decode(d.data)["delivery_id"] == "d1"
    assert h.tenant_id is None and h.activity is None
    assert db.read_sync(relay.read, rows[1].id, 2) == rows[2:4]  # the cursor and the limit


def test_a_first_start_on_an_empty_feed_starts_after_its_last_id(db: Database) -> None:
    db.write_sync(lambda c: feed.append(c, "h", "channel_health", {"n": 1}))
    last = db.read_sync(feed.last_id)
    db.write_sync(feed.prune, last)
    assert db.write_sync(relay.start, 1.0) == last


def test_conversation_changes_reach_the_feed_from_every_write_path(db: Database) -> None:
    """Created, closed, reopened, metadata changed, closed by the idle expiry: one ``c`` event
    each, in commit order, with the conversation after the change; an activity's insert (which
    updates the conversation's last_seq) and a status set to what it already is write none."""
    def setup(conn):  # type: ignore[no-untyped-def]
        t = make_tenant(conn)
        ch = make_channel(conn, t.id)
        return t, ch

    t, ch = db.write_sync(setup)
    start = db.read_sync(feed.last_id)

    def changes(conn):  # type: ignore[no-untyped-def]
        conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=now(),
                                    metadata={"topic": "billing"})
        activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u",
                          now=now(), text="hi")
        conversations.set_status(conn, conv.id, "closed", now())
        conversations.set_status(conn, conv.id, "closed", now())  # unchanged: no event
        conversations.set_status(conn, conv.id, "active", now())
        conn.execute("UPDATE conversations SET metadata = ? WHERE id = ?",
                     ('{"topic": "sales"}', conv.id))
        maintenance.expire_conversations(conn, "9999-01-01T00:00:00Z", now())
        return conv

    conv = db.write_sync(changes)
    events = db.read_sync(feed.after, start, 100)
    assert [e.kind for e in events] == ["c", "a", "c", "c", "c", "c"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    c = [e.data for e in events if e.kind == "c"]
    assert all(e.topic == conv.id for e in events)
    assert [(d["change"], d["previous_status"], d["status"]) for d in c] == [
        ("created", None, "active"), ("updated", "active", "closed"),
        ("updated", "closed", "active"), ("updated", "active", "active"),
        ("updated", "active", "closed")]
    assert c[0]["metadata"] == {"topic": "billing"} and c[3]["metadata"] == {"topic": "sales"}
    assert {(d["id"], d["tenant_id"], d["channel_id"]) for d in c} == {(conv.id, t.id, ch.id)}
    assert all(d["inserted_at"] == conv.inserted_at and d["updated_at"] for d in c)


def test_oversized_events_are_counted_for_readyz(db: Database) -> None:
    db.write_sync(relay.start, 1.0)
    db.write_sync(relay.oversized, "msg_a", True, 2.0)
    db.write_sync(relay.oversized, "msg_b", False, 3.0)
    row = db.read_sync(relay.position)
    assert row is not None
    assert (row["truncated"], row["skipped"], row["last_oversized"]) == (1, 1, "msg_b")
