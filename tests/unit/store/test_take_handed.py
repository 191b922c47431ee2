"""The broker pipeline's claims (store.queue.take_handed, gateway/workers/broker.py): a job
claims its row only under the handoff token it was published with; a redelivered job may take
the row over from a (dead) worker that claimed it under that token; a final row claims nothing.
SQLite, or PostgreSQL in that mode; ``now`` is passed in, nothing sleeps."""

from __future__ import annotations

import sqlite3

from store import activities, conversations, queue
from store.db import Database

from .conftest import make_channel, make_tenant

T0 = "2026-01-01T00:00:00.000000Z"


def _rows(conn: sqlite3.Connection, n: int) -> None:
    t = make_tenant(conn)
    ch = make_channel(conn, t.id)
    conv = conversations.create(conn, tenant_id=t.id, channel_id=ch.id, now=T0)
    for i in range(n):
        a = activities.insert(conn, tenant_id=t.id, conversation_id=conv.id, sender="u", now=T0,
                              text=f"m{i}")
        queue.enqueue(conn, a, [ch.id], T0)


def test_a_job_claims_its_row_only_under_its_own_token(db: Database) -> None:
    db.write_sync(_rows, 3)
    handed = db.write_sync(queue.claim, T0, 60, 10, "bus:")
    assert len(handed) == 3 and all(d.claim_token.startswith("bus:") for d in handed)
    a, b, c = handed
    assert db.write_sync(queue.claim, T0, 60, 10, "bus:") == []  # handed rows are not due

    # The job as published: worker 1 claims it, under its own prefix + the handoff token.
    got = db.write_sync(queue.take_handed, [(a.id, a.claim_token, False)], "w1:", T0, 120)
    assert [(d.id, d.claim_token) for d in got] == [(a.id, "w1:" + a.claim_token)]
    assert got[0].leased_until == queue._shift(T0, 120)
    # The same job again, not redelivered (published twice): nothing.
    assert db.write_sync(queue.take_handed, [(a.id, a.claim_token, False)], "w2:", T0, 120) == []
    # Redelivered (worker 1 died): worker 2 takes the row over.
    got = db.write_sync(queue.take_handed, [(a.id, a.claim_token, True)], "w2:", T0, 120)
    assert [d.claim_token for d in got] == ["w2:" + a.claim_token]

    # A stale token (the row was given back and handed again), or one of another row: nothing.
    assert db.write_sync(queue.take_handed, [(b.id, "bus:stale", True)], "w1:", T0, 120) == []
    assert db.write_sync(queue.take_handed, [(b.id, c.claim_token, True)], "w1:", T0, 120) == []

    # Final rows claim nothing, even redelivered.
    token = "w1:" + c.claim_token
    assert db.write_sync(queue.take_handed, [(c.id, c.claim_token, False)], "w1:", T0, 120)
    assert db.write_sync(queue.complete, c.id, token, T0) is not None
    assert db.write_sync(queue.take_handed, [(c.id, c.claim_token, True)], "w2:", T0, 120) == []

    # A failed attempt gives the row back, due by the schedule; its old job claims nothing.
    token = "w2:" + a.claim_token
    row = db.write_sync(queue.fail, a.id, token, T0, "500", True)
    assert row.status == "pending" and row.claim_token is None
    assert row.next_attempt_at == queue._shift(T0, 30)
    assert db.write_sync(queue.take_handed, [(a.id, a.claim_token, True)], "w1:", T0, 120) == []
