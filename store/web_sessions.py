"""Web sessions (admin panel and portal): the server-side half of a login. The signed cookie
names a row here; logout deletes it, so the cookie dies with it."""

from __future__ import annotations

import secrets
import sqlite3


def create(conn: sqlite3.Connection, area: str, user_id: str, expires_at: str, now: str) -> str:
    """A new session for ``user_id``; expired ones are pruned on the way."""
    conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
    sid = secrets.token_urlsafe(24)
    conn.execute("INSERT INTO web_sessions (id, area, user_id, expires_at) VALUES (?, ?, ?, ?)",
                 (sid, area, user_id, expires_at))
    return sid


def valid(conn: sqlite3.Connection, sid: object, area: str, user_id: str, now: str) -> bool:
    if not isinstance(sid, str):
        return False
    row = conn.execute(
        "SELECT 1 FROM web_sessions WHERE id = ? AND area = ? AND user_id = ? AND expires_at > ?",
        (sid, area, user_id, now)).fetchone()
    return row is not None


def delete(conn: sqlite3.Connection, sid: object) -> None:
    if isinstance(sid, str):
        conn.execute("DELETE FROM web_sessions WHERE id = ?", (sid,))


def delete_user(conn: sqlite3.Connection, user_id: str) -> None:
    """Every session of a user (deactivated, deleted, password changed)."""
    conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))
