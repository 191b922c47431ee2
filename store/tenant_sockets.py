"""Open sockets per tenant, counted in the store so that a tier's ``max_connections`` holds for
the whole gateway (every worker process, every node; migration m0027, gateway/tiersockets.py).

Each process is a *holder* (a random id) that keeps, per tenant, how many of its sockets are
open, and refreshes its ``seen_at`` while it holds any; only holders seen within ``STALE``
seconds count, so a process that died without closing frees its sockets after that long."""

from __future__ import annotations

import sqlite3

STALE = 30.0  # seconds after which a silent holder's sockets stop counting


def open_count(conn: sqlite3.Connection, tenant_id: str, now: float) -> int:
    row = conn.execute(
        """SELECT coalesce(sum(s.n), 0) FROM tenant_sockets s
             JOIN socket_holders h ON h.holder = s.holder
            WHERE s.tenant_id = ? AND h.seen_at > ?""", (tenant_id, now - STALE)).fetchone()
    return int(row[0])


def admit(conn: sqlite3.Connection, holder: str, tenant_id: str, cap: int, now: float
          ) -> tuple[bool, int]:
    """One more socket of ``tenant_id`` held by ``holder`` if the tenant has fewer than ``cap``
    open (in a write transaction); returns (admitted, how many were open before)."""
    # The tenant's lock row first (PostgreSQL: held until commit; SQLite: one writer anyway).
    conn.execute("""INSERT INTO tenant_sockets (tenant_id, holder, n) VALUES (?, '', 0)
                    ON CONFLICT (tenant_id, holder) DO UPDATE SET n = 0""", (tenant_id,))
    conn.execute("""INSERT INTO socket_holders (holder, seen_at) VALUES (?, ?)
                    ON CONFLICT (holder) DO UPDATE SET seen_at = excluded.seen_at""",
                 (holder, now))
    held = open_count(conn, tenant_id, now)
    if held >= cap:
        return False, held
    conn.execute("""INSERT INTO tenant_sockets (tenant_id, holder, n) VALUES (?, ?, 1)
                    ON CONFLICT (tenant_id, holder) DO UPDATE SET n = tenant_sockets.n + 1""",
                 (tenant_id, holder))
    return True, held


def release(conn: sqlite3.Connection, holder: str, tenant_id: str) -> None:
    conn.execute("""UPDATE tenant_sockets SET n = n - 1
                     WHERE tenant_id = ? AND holder = ? AND n > 0""", (tenant_id, holder))


def refresh(conn: sqlite3.Connection, holder: str, now: float) -> None:
    """The holder is alive; the rows of holders silent for ten times ``STALE`` go."""
    conn.execute("""INSERT INTO socket_holders (holder, seen_at) VALUES (?, ?)
                    ON CONFLICT (holder) DO UPDATE SET seen_at = excluded.seen_at""",
                 (holder, now))
    gone = [r[0] for r in conn.execute("SELECT holder FROM socket_holders WHERE seen_at < ?",
                                       (now - 10 * STALE,))]
    for old in gone:
        conn.execute("DELETE FROM tenant_sockets WHERE holder = ?", (old,))
        conn.execute("DELETE FROM socket_holders WHERE holder = ?", (old,))


def leave(conn: sqlite3.Connection, holder: str) -> None:
    """A process stopping: its sockets no longer count."""
    conn.execute("DELETE FROM tenant_sockets WHERE holder = ?", (holder,))
    conn.execute("DELETE FROM socket_holders WHERE holder = ?", (holder,))
