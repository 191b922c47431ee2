"""The alerts table as a durable queue: the gateway's own signed webhooks (health alerts).

The same rules as the deliveries queue (:mod:`store.queue`): a row is written in the same
transaction as the event that raised it, claimed with a lease and a claim token, retried after
:func:`store.queue.backoff` (or a longer ``Retry-After``), ``failed`` after
:data:`store.queue.MAX_ATTEMPTS` attempts or at once when not retryable; leases left by a dead
process are reclaimed at start-up. Kept apart from ``deliveries`` because alerts belong to no
activity or conversation, and must not count in the channel health they report on.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

from .models import Alert, from_row
from .queue import MAX_ATTEMPTS, backoff
from .util import iso, new_id, page, parse_iso

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


def get(conn: sqlite3.Connection, alert_id: str) -> Alert | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return from_row(Alert, row) if row else None


def list_page(conn: sqlite3.Connection, *, tenant_id: str | None = None,
              channel_id: str | None = None, status: str | None = None, limit: int = 50,
              cursor: str | None = None) -> tuple[list[Alert], str | None]:
    """Alerts, newest first, filtered; keyset-paged like every management list."""
    sql = f"SELECT {COLUMNS} FROM alerts WHERE 1=1"
    params: list[Any] = []
    for col, value in (("tenant_id", tenant_id), ("channel_id", channel_id), ("status", status)):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(Alert, r) for r in rows], nxt


def _shift(now: str, seconds: float) -> str:
    return iso(parse_iso(now) + timedelta(seconds=seconds))


def claim(conn: sqlite3.Connection, now: str, lease_seconds: float, limit: int) -> list[Alert]:
    """Claim up to ``limit`` due alerts, oldest due first, each with its own claim token."""
    rows = conn.execute(
        f"""UPDATE alerts
               SET claim_token = lower(hex(randomblob(16))), leased_until = ?, updated_at = ?
             WHERE id IN (SELECT id FROM alerts
                           WHERE status = 'pending' AND claim_token IS NULL
                             AND next_attempt_at <= ?
                           ORDER BY next_attempt_at LIMIT ?)
         RETURNING {COLUMNS}""",
        (_shift(now, lease_seconds), now, now, limit),
    ).fetchall()
    return [from_row(Alert, r) for r in rows]


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
    """A failed attempt, with the deliveries' schedule (see :func:`store.queue.fail`)."""
    row = conn.execute(
        "SELECT attempts FROM alerts WHERE id = ? AND claim_token = ?", (alert_id, token)
    ).fetchone()
    if row is None:
        return None
    attempts = row[0] + 1
    if not retryable or attempts >= MAX_ATTEMPTS:
        status, due = "failed", None
    else:
        status, due = "pending", _shift(now, max(backoff(attempts), retry_after or 0.0) * scale)
    row = conn.execute(
        f"""UPDATE alerts
               SET status = ?, attempts = ?, last_error = ?, next_attempt_at = ?,
                   claim_token = NULL, leased_until = NULL, updated_at = ?
             WHERE id = ? AND claim_token = ?
         RETURNING {COLUMNS}""",
        (status, attempts, error, due, now, alert_id, token),
    ).fetchone()
    return from_row(Alert, row) if row else None


def release_all(conn: sqlite3.Connection, now: str) -> int:
    """Give every lease back, due now: at start-up (they belong to a dead process) and at a
    clean shutdown (one process owns the database)."""
    return conn.execute(
        """UPDATE alerts SET claim_token = NULL, leased_until = NULL, next_attempt_at = ?,
                             updated_at = ?
            WHERE claim_token IS NOT NULL""",
        (now, now),
    ).rowcount


def next_due_at(conn: sqlite3.Connection) -> str | None:
    """When the earliest unclaimed pending alert becomes due (None: nothing is waiting)."""
    row = conn.execute(
        "SELECT min(next_attempt_at) FROM alerts WHERE status = 'pending' AND claim_token IS NULL"
    ).fetchone()
    return row[0] if row else None


def prune(conn: sqlite3.Connection, before: str) -> int:
    """Delete finished (sent or failed) alerts last changed before ``before``."""
    return conn.execute(
        "DELETE FROM alerts WHERE status != 'pending' AND updated_at < ?", (before,)
    ).rowcount

