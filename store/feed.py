"""The change feed: committed events in commit order, read by every process (see migration
``m0005_cluster``). New activities and tenant changes are appended by triggers; the rest by
:func:`append` inside the transaction that makes the change, so an event exists exactly when
its change was committed."""

from __future__ import annotations

import sqlite3
from collections.abc import Container
from typing import Any

import msgspec

from . import dialect
from .activities import COLUMNS as ACTIVITY_COLUMNS
from .models import Activity, from_row

KINDS = ("a", "d", "h", "i", "m", "c")  # m: attachment_status (m0017); c: conversation (m0025)
_encode = msgspec.json.Encoder().encode


class Event(msgspec.Struct):
    """One feed row: ``activity`` for kind ``a`` (None when it was deleted since), ``data``
    (decoded JSON) for ``d``, ``h`` and ``m``."""

    id: int
    kind: str
    topic: str
    activity: Activity | None = None
    data: Any = None
    ref: str | None = None


def append(conn: sqlite3.Connection, kind: str, topic: str, data: Any = None) -> None:
    """Add an event to the feed, in the caller's transaction."""
    assert kind in KINDS
    conn.execute("INSERT INTO feed (kind, topic, data) VALUES (?, ?, ?)",
                 (kind, topic, None if data is None else _encode(data).decode()))


def append_many(conn: sqlite3.Connection, kind: str, events: list[tuple[str, Any]]) -> None:
    """:func:`append` for many ``(topic, data)``, in order, with one statement."""
    assert kind in KINDS
    if events:
        conn.executemany("INSERT INTO feed (kind, topic, data) VALUES (?, ?, ?)",
                         [(kind, topic, None if data is None else _encode(data).decode())
                          for topic, data in events])


def last_id(conn: sqlite3.Connection) -> int:
    """The newest event's id (0 when the feed is empty): where a new reader starts."""
    row = conn.execute(dialect.LAST_FEED_ID[dialect.of(conn)]).fetchone()
    return int(row[0]) if row else 0


def first_id(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT min(id) FROM feed").fetchone()
    return row[0] if row else None


def after(conn: sqlite3.Connection, cursor: int, limit: int,
          wanted: Container[str] | None = None) -> list[Event]:
    """Up to ``limit`` events after ``cursor``, oldest first. A new activity's row is loaded
    only when its conversation is in ``wanted`` (None: always): a process reads only what its
    own sockets need (the others are filled later, if at all, by :func:`activities`)."""
    rows = conn.execute(
        "SELECT id, kind, topic, ref, data FROM feed WHERE id > ? ORDER BY id LIMIT ?",
        (cursor, limit),
    ).fetchall()
    out = []
    need: list[str] = []
    for r in rows:
        kind = r["kind"]
        if kind == "a":
            out.append(Event(r["id"], kind, r["topic"], ref=r["ref"]))
            if wanted is None or r["topic"] in wanted:
                need.append(r["ref"])
        else:
            data = msgspec.json.decode(r["data"]) if r["data"] is not None else None
            out.append(Event(r["id"], kind, r["topic"], data=data, ref=r["ref"]))
    if need:
        found = activities(conn, need)
        for e in out:
            if e.kind == "a" and e.ref in found:
                e.activity = found[e.ref]
    return out


def activities(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Activity]:
    """The activities with these ids, by id (deleted ones are missing)."""
    out: dict[str, Activity] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE id IN ({marks})",
                              chunk):
            out[r["id"]] = from_row(Activity, r)
    return out


def prune(conn: sqlite3.Connection, upto: int, batch: int = 20_000) -> int:
    """Delete events with ``id <= upto`` (oldest first, at most ``batch``)."""
    return conn.execute(
        "DELETE FROM feed WHERE id IN (SELECT id FROM feed WHERE id <= ? ORDER BY id LIMIT ?)",
        (upto, batch),
    ).rowcount
