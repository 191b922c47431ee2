"""The alerts table as a durable queue: the gateway's own signed webhooks (health alerts).

A row is written in the same transaction as the event that raised it, then worked with the
queue transitions the deliveries use (:mod:`store.queue`: claim with a lease and a claim token,
the same backoff, ``failed`` after five attempts or at once when not retryable, leases given
back at start-up). Kept apart from ``deliveries`` because alerts belong to no activity or
conversation, and must not count in the channel health they report on.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from . import queue
from .models import Alert, from_row
from .util import new_id, page, within

TABLE = "alerts"
COLUMNS = (
    "id, tenant_id, channel_id, event, url, body, status, attempts, last_error, next_attempt_at, "
    "leased_until, claim_token, sent_at, inserted_at, updated_at"
)


def enqueue(conn: sqlite3.Connection, *, tenant_id: str, channel_id: str, event: str, url: str,
            body: str, now: str) -> Alert:
    """A pending alert, due now."""
    row = conn.execute(
        f"""INSERT INTO alerts (id, tenant_id, channel_id, event, url, body, next_attempt_at,
                                inserted_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}""",
        (new_id(), tenant_id, channel_id, event, url, body, now, now, now),
    ).fetchone()
    alert: Alert = from_row(Alert, row)
    return alert


def list_page(conn: sqlite3.Connection, *, tenant_id: str | None = None,
              channel_id: str | None = None, status: str | None = None, limit: int = 50,
              cursor: str | None = None,
              tenant_ids: Any = None, channel_ids: Any = None) -> tuple[list[Alert], str | None]:
    """Alerts, newest first, filtered; keyset-paged like every management list."""
    sql = f"SELECT {COLUMNS} FROM alerts WHERE 1=1"
    params: list[Any] = []
    for col, value in (("tenant_id", tenant_id), ("channel_id", channel_id), ("status", status)):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    for col, ids in (("tenant_id", tenant_ids), ("channel_id", channel_ids)):
        clause, more = within(col, ids)
        sql += clause
        params.extend(more)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(Alert, r) for r in rows], nxt


def claim(conn: sqlite3.Connection, now: str, lease_seconds: float, limit: int) -> list[Alert]:
    """Claim up to ``limit`` due alerts (see :func:`store.queue.claim_due`)."""
    return [from_row(Alert, r)
            for r in queue.claim_due(conn, TABLE, COLUMNS, now, lease_seconds, limit)]


def complete(conn: sqlite3.Connection, alert_id: str, token: str, now: str) -> Alert | None:
    """A successful attempt: ``sent``. None when the claim is no longer ours."""
    row = conn.execute(
        f"""UPDATE alerts
               SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL,
                   next_attempt_at = NULL, claim_token = NULL, leased_until = NULL, updated_at = ?
             WHERE id = ? AND claim_token = ?
         RETURNING {COLUMNS}""",
        (now, now, alert_id, token),
    ).fetchone()
    return from_row(Alert, row) if row else None


def fail(conn: sqlite3.Connection, alert_id: str, token: str, now: str, error: str,
         retryable: bool = True, retry_after: float | None = None, *,
         scale: float = 1.0) -> Alert | None:
    """A failed attempt, with the deliveries' schedule (see :func:`store.queue.record_failure`)."""
    row = queue.record_failure(conn, TABLE, COLUMNS, alert_id, token, now, error, retryable,
                               retry_after, scale)
    return from_row(Alert, row) if row else None


def release_all(conn: sqlite3.Connection, now: str) -> int:
    """Give every lease back, due now: at start-up (they belong to a dead process) and at a
    clean shutdown (one process owns the database)."""
    return queue.release_leases(conn, TABLE, now)


def rescue_expired(conn: sqlite3.Connection, now: str) -> int:
    """Alerts whose lease ran out on a running server, given back (due now)."""
    return queue.release_expired(conn, TABLE, now)


def next_due_at(conn: sqlite3.Connection) -> str | None:
    """When the earliest unclaimed pending alert becomes due (None: nothing is waiting)."""
    return queue.earliest_due(conn, TABLE)


def prune(conn: sqlite3.Connection, before: str) -> int:
    """Delete finished (sent or failed) alerts last changed before ``before``."""
    return conn.execute(
        "DELETE FROM alerts WHERE status != 'pending' AND updated_at < ?", (before,)
    ).rowcount

