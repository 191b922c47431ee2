"""store.threads: a conversation's thread on a channel it was routed to — the first link wins,
only active conversations of the channel's own tenant are found, and the delivery worker's
thread lookup falls back to it for routed deliveries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store import migrations, queue, threads
from store.connect import connect
from store.models import Delivery

NOW = "2026-12-07T09:00:00.000000Z"


@pytest.fixture
def conn(tmp_path: Path):
    c = connect(tmp_path / "t.db")
    migrations.apply(c)
    for t in ("t1", "t2"):
        c.execute("INSERT INTO tenants (id, name, slug, api_key_hash, api_key_hint, inserted_at, "
                  "updated_at) VALUES (?, ?, ?, ?, 'h', ?, ?)", (t, t, t, "h" + t, NOW, NOW))
    for ch, t, kind in (("wa", "t1", "whatsapp_meta"), ("sl", "t1", "slack"), ("x", "t2", "slack")):
        c.execute("INSERT INTO channels (id, tenant_id, name, secret_hash, secret_enc, type, "
                  "inserted_at, updated_at) VALUES (?, ?, ?, 'h', 'e', ?, ?, ?)",
                  (ch, t, ch, kind, NOW, NOW))
    for conv, ch, key in (("c1", "wa", "+1555"), ("c2", "wa", "+1666")):
        c.execute("INSERT INTO conversations (id, tenant_id, channel_id, sender_key, inserted_at, "
                  "updated_at) VALUES (?, 't1', ?, ?, ?, ?)", (conv, ch, key, NOW, NOW))
    yield c
    c.close()


def _delivery(id: str, channel: str, conv: str) -> Delivery:
    return Delivery(id=id, activity_id="a", channel_id=channel, tenant_id="t1",
                    conversation_id=conv, status="pending", attempts=0, last_error=None,
                    next_attempt_at=None, leased_until=None, claim_token=None, sent_at=None,
                    delivered_at=None, read_at=None, provider_message_id=None, metadata={},
                    inserted_at=NOW, updated_at=NOW)


def test_first_link_wins_and_lookups(conn: sqlite3.Connection) -> None:
    assert threads.link(conn, channel_id="sl", thread_key="C1:1.1", conversation_id="c1",
                        tenant_id="t1", now=NOW)
    # The conversation already has a thread there; the key is already another's.
    assert not threads.link(conn, channel_id="sl", thread_key="C1:2.2", conversation_id="c1",
                            tenant_id="t1", now=NOW)
    assert not threads.link(conn, channel_id="sl", thread_key="C1:1.1", conversation_id="c2",
                            tenant_id="t1", now=NOW)
    found = threads.conversation(conn, "sl", "C1:1.1")
    assert found is not None and found.id == "c1"
    assert threads.conversation(conn, "sl", "C1:2.2") is None
    assert threads.conversation(conn, "x", "C1:1.1") is None  # another channel (and tenant)
    conn.execute("UPDATE conversations SET status = 'closed' WHERE id = 'c1'")
    assert threads.conversation(conn, "sl", "C1:1.1") is None  # a closed one is not reopened


def test_thread_senders_fall_back_to_the_link(conn: sqlite3.Connection) -> None:
    threads.link(conn, channel_id="sl", thread_key="C1:1.1", conversation_id="c1",
                 tenant_id="t1", now=NOW)
    got = queue.thread_senders(conn, [_delivery("d1", "wa", "c1"), _delivery("d2", "sl", "c1"),
                                      _delivery("d3", "sl", "c2")])
    assert got == {"d1": "+1555", "d2": "C1:1.1"}  # c2 has no thread on sl yet


def test_links_go_with_their_conversation(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    threads.link(conn, channel_id="sl", thread_key="C1:1.1", conversation_id="c1",
                 tenant_id="t1", now=NOW)
    conn.execute("DELETE FROM conversations WHERE id = 'c1'")
    assert conn.execute("SELECT count(*) FROM channel_threads").fetchone()[0] == 0
