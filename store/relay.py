"""The event relay's position in the feed (migration ``m0022_event_relay``)."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from . import feed
from .models import JSON_COLUMNS, Activity

NAME = "events"


def position(conn: sqlite3.Connection, name: str = NAME) -> dict[str, Any] | None:
    row = conn.execute("SELECT name, last_id, state, error, published, updated_at, truncated, "
                       "skipped, last_oversized FROM event_relay WHERE name = ?",
                       (name,)).fetchone()
    return dict(row) if row else None


def start(conn: sqlite3.Connection, now: float, name: str = NAME) -> int:
    """The relay's cursor; a first start begins with the oldest event still in the feed."""
    row = position(conn, name)
    if row is not None:
        return int(row["last_id"])
    first = feed.first_id(conn)
    last = (first - 1) if first is not None else feed.last_id(conn)
    conn.execute("INSERT INTO event_relay (name, last_id, state, published, updated_at) "
                 "VALUES (?, ?, 'starting', 0, ?)", (name, last, now))
    return last


def advance(conn: sqlite3.Connection, last_id: int, count: int, now: float,
            name: str = NAME) -> None:
    """Record that the broker confirmed every event up to ``last_id``."""
    conn.execute("UPDATE event_relay SET last_id = ?, published = published + ?, "
                 "state = 'connected', error = NULL, updated_at = ? "
                 "WHERE name = ? AND last_id < ?", (last_id, count, now, name, last_id))


def set_state(conn: sqlite3.Connection, state: str, error: str | None, now: float,
              name: str = NAME) -> None:
    conn.execute("UPDATE event_relay SET state = ?, error = ?, updated_at = ? WHERE name = ?",
                 (state, error, now, name))


def oversized(conn: sqlite3.Connection, event_id: str, was_truncated: bool, now: float,
              name: str = NAME) -> None:
    """Count an event too large for the broker: published without its data, or skipped
    (migration m0025)."""
    column = "truncated" if was_truncated else "skipped"
    conn.execute(f"UPDATE event_relay SET {column} = {column} + 1, last_oversized = ?, "
                 "updated_at = ? WHERE name = ?", (event_id, now, name))


def backlog(conn: sqlite3.Connection, last_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM feed WHERE id > ? AND kind IN ('a', 'd', 'c')",
                       (last_id,)).fetchone()
    return int(row[0])


class RawActivity(msgspec.Struct, gc=False):
    """An activity as the relay publishes it: the fields of :class:`store.models.Activity`, in
    its order (it encodes to the same JSON), with the JSON columns kept as the stored text
    (``msgspec.Raw``: embedded as they are, never decoded and encoded again). ``gc=False``, as
    :class:`Row`: strings only, no cycles, and thousands a second must not drive the garbage
    collector (whose full passes over the whole process would be charged to the write path)."""

    id: str
    tenant_id: str
    conversation_id: str
    seq: int
    type: str
    sender: str
    text: str | None
    attachments: msgspec.Raw
    metadata: msgspec.Raw
    idempotency_key: str | None
    source_channel_id: str | None
    external_id: str | None
    inserted_at: str
    updated_at: str
    extra: msgspec.Raw


_FIELDS = RawActivity.__struct_fields__
# read() builds it by position: the same fields as Activity, the JSON ones at 7, 8 and 14
# (tests/unit/store/test_relay.py checks that both encode alike).
if (_FIELDS != Activity.__struct_fields__
        or tuple(i for i, name in enumerate(_FIELDS) if name in JSON_COLUMNS) != (7, 8, 14)):
    raise ImportError("store.relay.RawActivity no longer mirrors store.models.Activity")


class Row(msgspec.Struct, gc=False):
    """One feed row for the relay: ``data`` is the feed's JSON text (delivery statuses,
    conversation changes), ``tenant_id``/``channel_id`` its conversation's (activities and
    delivery statuses; None when the conversation is gone), ``activity`` the new activity (None
    when it was deleted since). Untracked by the garbage collector, as :class:`RawActivity`."""

    id: int
    kind: str
    topic: str
    data: str | None = None
    tenant_id: str | None = None
    channel_id: str | None = None
    activity: RawActivity | None = None


_A = ", ".join(f"a.{name}" for name in _FIELDS)
READ = ("SELECT f.id, f.kind, f.topic, f.data, c.tenant_id, c.channel_id, " + _A + " FROM feed f"
        " LEFT JOIN conversations c ON f.kind IN ('a', 'd') AND c.id = f.topic"
        " LEFT JOIN activities a ON f.kind = 'a' AND a.id = f.ref"
        " WHERE f.id > ? ORDER BY f.id LIMIT ?")


def read(conn: sqlite3.Connection, cursor: int, limit: int) -> list[Row]:
    """Up to ``limit`` feed rows after ``cursor`` in id (commit) order, every kind (the cursor
    moves past the ones the relay does not publish), each with what its message needs: one
    query, the activity's JSON columns kept as stored text."""
    out: list[Row] = []
    raw = msgspec.Raw
    for r in conn.execute(READ, (cursor, limit)):
        act = None
        if r[6] is not None:
            act = RawActivity(r[6], r[7], r[8], r[9], r[10], r[11], r[12], raw(r[13]),
                              raw(r[14]), r[15], r[16], r[17], r[18], r[19], raw(r[20]))
        out.append(Row(r[0], r[1], r[2], r[3], r[4], r[5], act))
    return out
