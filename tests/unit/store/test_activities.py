"""Activities get a per-conversation ``seq``, gap-free and in commit order."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from store import activities, conversations
from store.db import Database

from .conftest import make_channel, make_conversation, make_tenant, now


def _world(conn: sqlite3.Connection) -> tuple[str, str, str]:
    t = make_tenant(conn)
    ch = make_channel(conn, t.id)
    return t.id, make_conversation(conn, t.id, ch.id).id, make_conversation(conn, t.id, ch.id).id


def test_seq_is_per_conversation(db: Database) -> None:
    def tx(conn: sqlite3.Connection) -> list[tuple[str, int]]:
        tid, c1, c2 = _world(conn)
        out = []
        for cid in (c1, c2, c1, c1, c2):
            a = activities.insert(conn, tenant_id=tid, conversation_id=cid, sender="u", now=now())
            out.append((cid, a.seq))
        assert conversations.get(conn, c1).last_seq == 3
        return [s for _, s in out]
    assert db.write_sync(tx) == [1, 1, 2, 3, 2]


def test_insert_into_unknown_conversation(db: Database) -> None:
    with pytest.raises(LookupError):
        db.write_sync(lambda c: activities.insert(
            c, tenant_id="t", conversation_id="nope", sender="u", now=now()))


async def test_seq_gap_free_under_concurrency_and_rollbacks(db: Database) -> None:
    tid, cid, _ = db.write_sync(_world)

    def maybe_fail(conn: sqlite3.Connection, i: int) -> int:
        a = activities.insert(conn, tenant_id=tid, conversation_id=cid, sender="u", now=now(),
                              text=str(i))
        if i % 7 == 0:
            raise ValueError("rolled back")  # its seq must be reused, not lost
        return a.seq

    results = await asyncio.gather(*(db.write(maybe_fail, i) for i in range(100)),
                                   return_exceptions=True)
    seqs = sorted(r for r in results if isinstance(r, int))
    assert seqs == list(range(1, len(seqs) + 1))
    listed = await db.read(activities.list_after, cid)
    assert [a.seq for a in listed] == seqs
    assert [a.seq for a in await db.read(lambda c: activities.list_after(c, cid, after_seq=10,
                                                                           limit=5))] == [11, 12, 13, 14, 15]


def test_idempotency_key_unique_per_conversation(db: Database) -> None:
    def tx(conn: sqlite3.Connection) -> None:
        tid, c1, c2 = _world(conn)
        a = activities.insert(conn, tenant_id=tid, conversation_id=c1, sender="u", now=now(),
                              idempotency_key="k")
        # The same key in another conversation is a different activity.
        activities.insert(conn, tenant_id=tid, conversation_id=c2, sender="u", now=now(),
                          idempotency_key="k")
        assert activities.by_idempotency_key(conn, c1, "k").id == a.id
        with pytest.raises(sqlite3.IntegrityError):
            activities.insert(conn, tenant_id=tid, conversation_id=c1, sender="u", now=now(),
                              idempotency_key="k")
    db.write_sync(tx)


def test_external_id_unique_per_source_channel(db: Database) -> None:
    def tx(conn: sqlite3.Connection) -> None:
        tid, c1, _ = _world(conn)
        ch = conversations.get(conn, c1).channel_id
        activities.insert(conn, tenant_id=tid, conversation_id=c1, sender="u", now=now(),
                          source_channel_id=ch, external_id="wamid.1")
        assert activities.by_external_id(conn, ch, "wamid.1") is not None
        with pytest.raises(sqlite3.IntegrityError):
            activities.insert(conn, tenant_id=tid, conversation_id=c1, sender="u", now=now(),
                              source_channel_id=ch, external_id="wamid.1")
    db.write_sync(tx)
