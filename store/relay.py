"""The event relay's position in the feed (migration ``m0022_event_relay``)."""

from __future__ import annotations

import sqlite3
from typing import Any

from . import feed

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


def conversations(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[str, str]]:
    """conversation id -> (tenant id, channel id) for the events' subjects."""
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute("SELECT id, tenant_id, channel_id FROM conversations "
                              f"WHERE id IN ({marks})", chunk):
            out[r["id"]] = (r["tenant_id"], r["channel_id"])
    return out


def backlog(conn: sqlite3.Connection, last_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM feed WHERE id > ? AND kind IN ('a', 'd', 'c')",
                       (last_id,)).fetchone()
    return int(row[0])
