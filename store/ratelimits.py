"""Rate-limit state shared by every node on PostgreSQL (gateway/ratelimit.py): one GCRA row per
key — its "theoretical arrival time" — in the ``UNLOGGED`` table ``rate_limits``, changed by one
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per request, on PostgreSQL's clock (the same for
every node, whatever the nodes' own clocks say).

The row changes only when the request is allowed (denied requests do not count, as in the
in-process limiter); the statement also reads the row as it was, so a denial learns when to
come back in the same round trip. ``UNLOGGED``: not written to the WAL (cheap, not replicated;
emptied after a crash of PostgreSQL, which only forgives the current window). Created at first
use, not by a migration: it is process state, like ``leases``, and ``converger db copy`` leaves
it out.
"""

from __future__ import annotations

from typing import Any

TABLE = "rate_limits"

CREATE = (f"CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} "
          "(key TEXT PRIMARY KEY, tat DOUBLE PRECISION NOT NULL)")

# %(i)s: seconds per request (window / limit); %(w)s: the window. now = the statement's time.
HIT = f"""
WITH clock AS (SELECT extract(epoch FROM statement_timestamp())::float8 AS now),
     hit AS (
       INSERT INTO {TABLE} AS r (key, tat)
       SELECT %(k)s, clock.now + %(i)s FROM clock
       ON CONFLICT (key) DO UPDATE
          SET tat = GREATEST(r.tat, excluded.tat - %(i)s) + %(i)s
        WHERE GREATEST(r.tat, excluded.tat - %(i)s) + %(i)s - %(w)s <= excluded.tat - %(i)s
       RETURNING tat)
SELECT (SELECT tat FROM hit), (SELECT tat FROM {TABLE} WHERE key = %(k)s),
       (SELECT now FROM clock)
"""


def create(raw: Any) -> None:
    """``rate_limits`` (when missing) on a psycopg connection in autocommit mode."""
    import psycopg

    try:
        raw.execute(CREATE)
    except psycopg.errors.UniqueViolation:  # another node created it at the same moment
        pass


def hit(raw: Any, key: str, limit: int, window: float) -> tuple[float | None, float, float]:
    """Count one request for ``key``: ``(new arrival time or None when denied, the arrival time
    before, now)``, in seconds on PostgreSQL's clock."""
    interval = window / limit
    new, before, now = raw.execute(HIT, {"k": key, "i": interval, "w": window}).fetchone()
    return (None if new is None else float(new)), float(before if before is not None else now), \
        float(now)


def sweep(raw: Any) -> int:
    """Forget keys whose arrival time has passed (they hold nothing); returns how many."""
    cur = raw.execute(f"DELETE FROM {TABLE} WHERE tat < extract(epoch FROM statement_timestamp())")
    return int(cur.rowcount)
