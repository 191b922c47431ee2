"""Singleton roles and worker heartbeats shared by the processes of one gateway.

A lease is a row ``(name, owner, expires_at)``: its owner renews it before it expires; another
process takes it when it has expired, or at once when its owner is known dead (``dead(owner)``,
e.g. a pid on this machine that no longer exists). Times are Unix seconds from the caller
(``now`` is a parameter, so tests drive time by hand)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any


def take(conn: sqlite3.Connection, name: str, owner: str, now: float, ttl: float,
         dead: Callable[[str], bool] = lambda owner: False) -> bool:
    """Take or renew lease ``name`` for ``owner`` until ``now + ttl``; True when held."""
    row = conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] != owner and row[1] > now and not dead(row[0]):
        return False
    if row is None or row[0] != owner:
        conn.execute(
            """INSERT INTO leases (name, owner, expires_at, taken_at) VALUES (?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                   expires_at = excluded.expires_at, taken_at = excluded.taken_at""",
            (name, owner, now + ttl, now))
    else:
        conn.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (now + ttl, name))
    return True


def release(conn: sqlite3.Connection, name: str, owner: str) -> bool:
    """Give lease ``name`` up if ``owner`` holds it."""
    return conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?",
                        (name, owner)).rowcount > 0


def holder(conn: sqlite3.Connection, name: str) -> tuple[str, float] | None:
    row = conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
    return (row[0], row[1]) if row else None


# -- worker heartbeats ---------------------------------------------------------------------
def beat(conn: sqlite3.Connection, slot: int, pid: int, owner: str, started_at: float,
         now: float, sockets: int, ready: bool) -> None:
    conn.execute(
        """INSERT INTO workers (slot, pid, owner, started_at, seen_at, sockets, ready)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (slot) DO UPDATE SET pid = excluded.pid, owner = excluded.owner,
               started_at = excluded.started_at, seen_at = excluded.seen_at,
               sockets = excluded.sockets, ready = excluded.ready""",
        (slot, pid, owner, started_at, now, sockets, int(ready)))


def forget_workers(conn: sqlite3.Connection, first_slot: int) -> int:
    """Drop heartbeats of slots ``>= first_slot`` (a restart with fewer workers)."""
    return conn.execute("DELETE FROM workers WHERE slot >= ?", (first_slot,)).rowcount


def workers(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT slot, pid, owner, started_at, seen_at, sockets, ready FROM workers ORDER BY slot"
    ).fetchall()
    return [dict(r) for r in rows]


# -- periodic jobs ---------------------------------------------------------------------------
def job_ran(conn: sqlite3.Connection, name: str, at: str, pid: int) -> None:
    conn.execute(
        """INSERT INTO job_runs (name, last_run, runs, pid) VALUES (?, ?, 1, ?)
           ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run,
               runs = job_runs.runs + 1, pid = excluded.pid""",
        (name, at, pid))


def job_last_runs(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT name, last_run FROM job_runs")}
