"""Channel threads (m0007): a conversation's thread on a channel it was routed to."""

from __future__ import annotations

import sqlite3

from .conversations import COLUMNS
from .models import Conversation, from_row


def link(conn: sqlite3.Connection, *, channel_id: str, thread_key: str, conversation_id: str,
         tenant_id: str, now: str) -> bool:
    """Record that ``conversation_id`` lives in ``thread_key`` on ``channel_id``. The first
    thread wins: a conversation already threaded there (or a key already taken) is kept.
    Returns whether a row was added."""
    return conn.execute(
        """INSERT INTO channel_threads
               (channel_id, thread_key, conversation_id, tenant_id, inserted_at)
           VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
        (channel_id, thread_key, conversation_id, tenant_id, now),
    ).rowcount > 0


def conversation(conn: sqlite3.Connection, channel_id: str, thread_key: str) -> Conversation | None:
    """The active conversation threaded at ``thread_key`` on ``channel_id``, of the channel's
    own tenant."""
    cols = ", ".join(f"c.{c.strip()}" for c in COLUMNS.split(","))
    row = conn.execute(
        f"""SELECT {cols} FROM channel_threads t
              JOIN conversations c ON c.id = t.conversation_id AND c.tenant_id = t.tenant_id
              JOIN channels ch ON ch.id = t.channel_id AND ch.tenant_id = t.tenant_id
             WHERE t.channel_id = ? AND t.thread_key = ? AND c.status = 'active'""",
        (channel_id, thread_key),
    ).fetchone()
    return from_row(Conversation, row) if row else None


def keys(conn: sqlite3.Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``(channel id, conversation id) → thread key`` for the pairs that have one."""
    out: dict[tuple[str, str], str] = {}
    for start in range(0, len(pairs), 400):
        chunk = pairs[start:start + 400]
        where = " OR ".join("(channel_id = ? AND conversation_id = ?)" for _ in chunk)
        args = [v for pair in chunk for v in pair]
        for r in conn.execute(
                f"SELECT channel_id, conversation_id, thread_key FROM channel_threads WHERE {where}",
                args):
            out[(r[0], r[1])] = r[2]
    return out
