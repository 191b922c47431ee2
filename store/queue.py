"""The deliveries table as a durable queue: one row per (activity, channel).

Rows are written in the same transaction as their activity (transactional outbox).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from . import analytics, threads
from .models import Activity, Delivery, from_row
from .util import dumps, iso, new_id, page, parse_iso, within

COLUMNS = (
    "id, activity_id, channel_id, tenant_id, conversation_id, status, attempts, last_error, "
    "next_attempt_at, leased_until, claim_token, sent_at, delivered_at, read_at, "
    "provider_message_id, metadata, inserted_at, updated_at"
)


def enqueue(conn: sqlite3.Connection, activity: Activity, channel_ids: Iterable[str], now: str,
            skipped: Mapping[str, str] | None = None) -> int:
    """Create a pending, due-now delivery per channel, and a ``skipped`` one (never attempted,
    the reason in ``last_error``) per channel of ``skipped`` (channel id → reason). Returns how
    many pending ones were created."""
    rows = [
        (new_id(), activity.id, cid, activity.tenant_id, activity.conversation_id, now, now, now)
        for cid in channel_ids
    ]
    if rows:
        conn.executemany(
            """INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, conversation_id,
                                       next_attempt_at, inserted_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (activity_id, channel_id) DO NOTHING""",
            rows,
        )
    if skipped:
        conn.executemany(
            """INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, conversation_id,
                                       status, last_error, inserted_at, updated_at)
               VALUES (?, ?, ?, ?, ?, 'skipped', ?, ?, ?)
               ON CONFLICT (activity_id, channel_id) DO NOTHING""",
            [(new_id(), activity.id, cid, activity.tenant_id, activity.conversation_id, reason,
              now, now) for cid, reason in skipped.items()],
        )
        for cid in skipped:
            analytics.outcome(conn, _Target(activity.tenant_id, cid), "skipped", now)
    return len(rows)


class _Target:
    """What :func:`analytics.outcome` reads of a delivery that has no row to return."""

    def __init__(self, tenant_id: str, channel_id: str) -> None:
        self.tenant_id, self.channel_id = tenant_id, channel_id


def get(conn: sqlite3.Connection, delivery_id: str) -> Delivery | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return from_row(Delivery, row) if row else None


def for_activities(conn: sqlite3.Connection, activity_ids: list[str]) -> dict[str, list[Delivery]]:
    out: dict[str, list[Delivery]] = {}
    for start in range(0, len(activity_ids), 500):
        chunk = activity_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM deliveries WHERE activity_id IN ({marks}) ORDER BY inserted_at",
            chunk,
        ).fetchall()
        for r in rows:
            d = from_row(Delivery, r)
            out.setdefault(d.activity_id, []).append(d)
    return out


def list_page(
    conn: sqlite3.Connection,
    *,
    tenant_id: str | None = None,
    channel_id: str | None = None,
    activity_id: str | None = None,
    conversation_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    tenant_ids: Any = None,
    channel_ids: Any = None,
) -> tuple[list[Delivery], str | None]:
    sql = f"SELECT {COLUMNS} FROM deliveries WHERE 1=1"
    params: list[Any] = []
    for col, value in (
        ("tenant_id", tenant_id), ("channel_id", channel_id), ("activity_id", activity_id),
        ("conversation_id", conversation_id), ("status", status),
    ):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    for col, ids in (("tenant_id", tenant_ids), ("channel_id", channel_ids)):
        clause, more = within(col, ids)
        sql += clause
        params.extend(more)
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor)
    return [from_row(Delivery, r) for r in rows], nxt


def counts_by_status(conn: sqlite3.Connection, tenant_id: str | None = None, *,
                     channel_id: str | None = None, activity_id: str | None = None,
                     conversation_id: str | None = None) -> dict[str, int]:
    """Deliveries per status, under the same filters as :func:`list_page` (but the status)."""
    sql = "SELECT status, count(*) AS n FROM deliveries WHERE 1=1"
    params: list[Any] = []
    for col, value in (("tenant_id", tenant_id), ("channel_id", channel_id),
                       ("activity_id", activity_id), ("conversation_id", conversation_id)):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    rows = conn.execute(sql + " GROUP BY status", params).fetchall()
    return {r["status"]: r["n"] for r in rows}


def retry_now(conn: sqlite3.Connection, delivery_id: str, now: str) -> Delivery | None:
    """Make a failed or pending delivery due now (a fresh set of attempts for a failed one)."""
    row = conn.execute(
        f"""UPDATE deliveries
               SET status = 'pending', next_attempt_at = ?, updated_at = ?,
                   attempts = CASE WHEN status = 'failed' THEN 0 ELSE attempts END
             WHERE id = ? AND status IN ('failed', 'pending') AND claim_token IS NULL
         RETURNING {COLUMNS}""",
        (now, now, delivery_id),
    ).fetchone()
    return from_row(Delivery, row) if row else None


def finished_before(conn: sqlite3.Connection, before: str, limit: int) -> list[str]:
    """Ids of up to ``limit`` finished deliveries last changed before ``before`` (a read: the
    scan runs on a reader connection, and the writer only deletes what it found)."""
    rows = conn.execute(
        """SELECT id FROM deliveries
            WHERE status != 'pending' AND claim_token IS NULL AND updated_at < ? LIMIT ?""",
        (before, limit),
    ).fetchall()
    return [r[0] for r in rows]


def delete_finished(conn: sqlite3.Connection, ids: list[str], before: str) -> int:
    """Delete the given deliveries if they are still finished and unchanged since ``before``."""
    n = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        n += conn.execute(
            f"""DELETE FROM deliveries WHERE id IN ({marks})
                  AND status != 'pending' AND claim_token IS NULL AND updated_at < ?""",
            (*chunk, before),
        ).rowcount
    return n


# -- the queue's transitions ----------------------------------------------------------------
# Every transition after a claim names the claim token it holds: a worker whose lease expired
# (and whose row was rescued and claimed again) cannot overwrite the newer attempt's outcome.

MAX_ATTEMPTS = 5
RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3, "failed": -1}


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 30, 90, 270, 810, the original's
    schedule (docs/delivery.md)."""
    return float(3**attempts * 10)


def _shift(now: str, seconds: float) -> str:
    return iso(parse_iso(now) + timedelta(seconds=seconds))


# The transitions every queue table shares (``deliveries`` here, ``alerts`` in store/alerts.py):
# the same columns for the claim, the lease and the schedule; each module wraps them with its
# own row type.
QUEUE_TABLES = ("deliveries", "alerts")


# Rows of a tenant that is not active wait (neither claimed nor due) until it is active again.
ACTIVE_TENANT = "AND tenant_id IN (SELECT id FROM tenants WHERE status = 'active')"


def claim_due(conn: sqlite3.Connection, table: str, columns: str, now: str, lease_seconds: float,
              limit: int, owner: str = "", only_active_tenants: bool = False,
              where: str = "", params: tuple[Any, ...] = ()) -> list[Any]:
    """Claim up to ``limit`` due rows of ``table`` (oldest due first) in one
    ``UPDATE … RETURNING``; each gets its own random claim token (prefixed with ``owner``: the
    claiming worker's slot, see :func:`release_owned`) and a lease until ``now + lease_seconds``.
    On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED`` (:mod:`store.dialect`): nodes
    claiming at once each take other rows instead of waiting for one another.
    Due means: pending, not claimed, ``next_attempt_at <= now`` (and, with
    ``only_active_tenants``, of a tenant that is active; and ``where``, an extra condition
    with its ``params``)."""
    assert table in QUEUE_TABLES
    active = ACTIVE_TENANT if only_active_tenants else ""
    return conn.execute(
        f"""UPDATE {table}
               SET claim_token = ? || lower(hex(randomblob(16))), leased_until = ?, updated_at = ?
             WHERE id IN (SELECT id FROM {table}
                           WHERE status = 'pending' AND claim_token IS NULL
                             AND next_attempt_at <= ? {active} {where}
                           ORDER BY next_attempt_at LIMIT ? /*skip_locked*/)
         RETURNING {columns}""",
        (owner, _shift(now, lease_seconds), now, now, *params, limit),
    ).fetchall()


def release_owned(conn: sqlite3.Connection, table: str, owner: str, now: str) -> int:
    """Every lease of ``table`` whose claim token starts with ``owner`` given back, due now:
    a worker's own leases when it stops, or its dead predecessor's when it starts (the slot's
    prefix is used by no other process)."""
    assert table in QUEUE_TABLES and owner
    return conn.execute(
        f"""UPDATE {table}
               SET claim_token = NULL, leased_until = NULL, next_attempt_at = ?, updated_at = ?
             WHERE claim_token IS NOT NULL AND substr(claim_token, 1, ?) = ?""",
        (now, now, len(owner), owner),
    ).rowcount


def record_failure(conn: sqlite3.Connection, table: str, columns: str, row_id: str, token: str,
                   now: str, error: str, retryable: bool, retry_after: float | None,
                   scale: float) -> Any:
    """A failed attempt on a claimed row: ``attempts += 1``, then due again after
    :func:`backoff` (or ``retry_after`` when longer), times ``scale``; or ``failed`` after the
    fifth attempt, or at once when not ``retryable``. None when the claim is no longer ours."""
    assert table in QUEUE_TABLES
    row = conn.execute(
        f"SELECT attempts FROM {table} WHERE id = ? AND claim_token = ?", (row_id, token)
    ).fetchone()
    if row is None:
        return None
    attempts = row[0] + 1
    if not retryable or attempts >= MAX_ATTEMPTS:
        status, due = "failed", None
    else:
        wait = max(backoff(attempts), retry_after or 0.0)
        status, due = "pending", _shift(now, wait * scale)
    return conn.execute(
        f"""UPDATE {table}
               SET status = ?, attempts = ?, last_error = ?, next_attempt_at = ?,
                   claim_token = NULL, leased_until = NULL, updated_at = ?
             WHERE id = ? AND claim_token = ?
         RETURNING {columns}""",
        (status, attempts, error, due, now, row_id, token),
    ).fetchone()


def release_leases(conn: sqlite3.Connection, table: str, now: str) -> int:
    """Every lease of ``table`` given back, due now."""
    assert table in QUEUE_TABLES
    return conn.execute(
        f"""UPDATE {table}
               SET claim_token = NULL, leased_until = NULL, next_attempt_at = ?, updated_at = ?
             WHERE claim_token IS NOT NULL""",
        (now, now),
    ).rowcount


def release_expired(conn: sqlite3.Connection, table: str, now: str) -> int:
    """Every lease of ``table`` that ran out (its worker hung, or its outcome could not be
    recorded) given back, due now. The attempt in flight is not counted: at least once, and the
    receiver dedupes by the row's id (``webhook-id``)."""
    assert table in QUEUE_TABLES
    return conn.execute(
        f"""UPDATE {table}
               SET claim_token = NULL, leased_until = NULL, next_attempt_at = ?, updated_at = ?
             WHERE claim_token IS NOT NULL AND leased_until <= ?""",
        (now, now, now),
    ).rowcount


def earliest_due(conn: sqlite3.Connection, table: str,
                 only_active_tenants: bool = False) -> str | None:
    """When the earliest unclaimed pending row of ``table`` becomes due (None: none waits)."""
    assert table in QUEUE_TABLES
    active = ACTIVE_TENANT if only_active_tenants else ""
    row = conn.execute(
        f"""SELECT min(next_attempt_at) FROM {table}
             WHERE status = 'pending' AND claim_token IS NULL {active}"""
    ).fetchone()
    return row[0] if row else None


# The tenants whose SLA tier (store/tiers.py) has a given delivery priority; on no tier: 0.
_TIERED = "SELECT tt.tenant_id FROM tenant_tiers tt JOIN sla_tiers t ON t.id = tt.tier_id"
AT_LEVEL = f"AND tenant_id IN ({_TIERED} WHERE t.priority = ?)"
AT_LEVEL_0 = f"AND tenant_id NOT IN ({_TIERED} WHERE t.priority != ?)"


def shares(levels: list[int], limit: int) -> list[tuple[int, int]]:
    """How many of ``limit`` claims each priority level gets: in proportion to
    ``1 + priority``, at least one each (while ``limit`` allows), highest level first."""
    levels = sorted(set(levels), reverse=True)
    weights = [1 + p for p in levels]
    total = sum(weights)
    quota = [max(1, limit * w // total) for w in weights]
    while sum(quota) > limit and max(quota) > 1:
        quota[quota.index(max(quota))] -= 1
    while sum(quota) > limit:  # fewer claims than levels: the highest levels get them
        quota[max(i for i, q in enumerate(quota) if q)] -= 1
    return [(p, q) for p, q in zip(levels, quota, strict=True) if q]


def claim(conn: sqlite3.Connection, now: str, lease_seconds: float, limit: int,
          owner: str = "") -> list[Delivery]:
    """Claim up to ``limit`` due deliveries of active tenants (see :func:`claim_due`).

    With tenants on SLA tiers of different priorities, each priority level gets a share of
    the batch in proportion to ``1 + priority`` (at least one claim), oldest due first within
    it; what a level leaves unused goes to the others, highest level first. So when the queue
    is behind, higher tiers' deliveries go first and lower tiers still progress
    (docs/delivery.md#delivery-priority)."""
    levels = [r[0] for r in conn.execute(
        """SELECT DISTINCT t.priority FROM sla_tiers t
            WHERE t.priority != 0 AND EXISTS (SELECT 1 FROM tenant_tiers tt
                                               WHERE tt.tier_id = t.id)""")]
    if not levels:
        return [from_row(Delivery, r) for r in claim_due(
            conn, "deliveries", COLUMNS, now, lease_seconds, limit, owner, True)]
    rows: list[Any] = []
    empty = set()
    for level, quota in shares([0, *levels], limit):
        got = claim_due(conn, "deliveries", COLUMNS, now, lease_seconds, quota, owner, True,
                        AT_LEVEL if level else AT_LEVEL_0, (level or 0,))
        rows += got
        if len(got) < quota:
            empty.add(level)
    # What the others left (or a batch smaller than the levels), highest level first, to the
    # levels that may have more.
    for level in sorted({0, *levels} - empty, reverse=True):
        if len(rows) >= limit:
            break
        rows += claim_due(conn, "deliveries", COLUMNS, now, lease_seconds, limit - len(rows),
                          owner, True, AT_LEVEL if level else AT_LEVEL_0, (level or 0,))
    return [from_row(Delivery, r) for r in rows]


def claim_activity(
    conn: sqlite3.Connection, activity_id: str, now: str, lease_seconds: float, owner: str = ""
) -> list[Delivery]:
    """Claim the pending deliveries of one activity (the ``inline`` pipeline)."""
    rows = conn.execute(
        f"""UPDATE deliveries
               SET claim_token = ? || lower(hex(randomblob(16))), leased_until = ?, updated_at = ?
             WHERE activity_id = ? AND status = 'pending' AND claim_token IS NULL
         RETURNING {COLUMNS}""",
        (owner, _shift(now, lease_seconds), now, activity_id),
    ).fetchall()
    return [from_row(Delivery, r) for r in rows]


def take_handed(conn: sqlite3.Connection, jobs: Iterable[tuple[str, str, bool]], owner: str,
                now: str, lease_seconds: float) -> list[Delivery]:
    """Claim deliveries whose jobs arrived from a broker (gateway/workers/broker.py).

    Each job is ``(delivery id, handoff token, redelivered)``: the sweeper claimed the row with
    the handoff token when it published the job. The worker's claim token is ``owner + handoff
    token``; it replaces the handoff token only while the row is still pending and holds it (so
    a job published twice, or one whose row was given back and published again, or already
    final, claims nothing). A job the broker *redelivers* (its first worker's channel closed or
    its ack did not come in time: the worker died) may also take the row over from that worker
    — any claim token ending in the handoff token."""
    until = _shift(now, lease_seconds)
    out: list[Delivery] = []
    for delivery_id, token, redelivered in jobs:
        mine = owner + token
        params: tuple[str, ...] = (token,)
        match = "claim_token = ?"
        if redelivered:
            match, params = "(claim_token = ? OR claim_token LIKE ?)", (token, "%:" + token)
        row = conn.execute(
            f"""UPDATE deliveries SET claim_token = ?, leased_until = ?, updated_at = ?
                 WHERE id = ? AND status = 'pending' AND {match}
             RETURNING {COLUMNS}""",
            (mine, until, now, delivery_id, *params),
        ).fetchone()
        if row is not None:
            out.append(from_row(Delivery, row))
    return out


def complete(
    conn: sqlite3.Connection,
    delivery_id: str,
    token: str,
    now: str,
    provider_message_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    tally: analytics.Tally | None = None,
) -> Delivery | None:
    """A successful attempt: ``sent``. None when the claim is no longer ours.

    A receipt may have arrived while the attempt was in flight (a fast provider), so a row
    already past ``pending`` keeps its status. ``tally``: see :class:`analytics.Tally`.
    """
    row = conn.execute(
        f"""UPDATE deliveries
               SET status = CASE WHEN status = 'pending' THEN 'sent' ELSE status END,
                   sent_at = coalesce(sent_at, ?), attempts = attempts + 1, last_error = NULL,
                   provider_message_id = coalesce(?, provider_message_id),
                   metadata = json_patch(metadata, ?), next_attempt_at = NULL,
                   claim_token = NULL, leased_until = NULL, updated_at = ?
             WHERE id = ? AND claim_token = ?
         RETURNING {COLUMNS}""",
        (now, provider_message_id, dumps(metadata or {}), now, delivery_id, token),
    ).fetchone()
    if row is None:
        return None
    delivery = from_row(Delivery, row)
    if delivery.sent_at == now:  # not already sent by a receipt that came first
        analytics.outcome(conn, delivery, "sent", now, tally)
    return delivery


def fail(
    conn: sqlite3.Connection,
    delivery_id: str,
    token: str,
    now: str,
    error: str,
    retryable: bool = True,
    retry_after: float | None = None,
    *,
    scale: float = 1.0,
) -> Delivery | None:
    """A failed attempt (see :func:`record_failure`). ``scale`` multiplies the wait (tests only).
    None when the claim is no longer ours."""
    row = record_failure(conn, "deliveries", COLUMNS, delivery_id, token, now, error, retryable,
                         retry_after, scale)
    if row is None:
        return None
    delivery = from_row(Delivery, row)
    analytics.failure(conn, delivery, error, now)
    if delivery.status == "failed":
        analytics.outcome(conn, delivery, "failed", now)
    return delivery


def release(conn: sqlite3.Connection, tokens: Iterable[str]) -> int:
    """Give claimed rows back without an attempt (shutdown): due again at once."""
    tokens = list(tokens)
    n = 0
    for start in range(0, len(tokens), 500):
        chunk = tokens[start:start + 500]
        marks = ",".join("?" * len(chunk))
        n += conn.execute(
            f"""UPDATE deliveries SET claim_token = NULL, leased_until = NULL
                 WHERE claim_token IN ({marks})""",
            chunk,
        ).rowcount
    return n


def rescue_expired(conn: sqlite3.Connection, now: str) -> int:
    """Reclaim deliveries whose lease ran out (see :func:`release_expired`): due again now."""
    return release_expired(conn, "deliveries", now)


def rescue_all(conn: sqlite3.Connection, now: str) -> int:
    """At start-up every lease belongs to a previous process (one process owns the database),
    so all of them are reclaimed without waiting for them to expire."""
    return release_leases(conn, "deliveries", now)


def next_due_at(conn: sqlite3.Connection) -> str | None:
    """When the earliest unclaimed pending delivery of an active tenant becomes due (None:
    nothing is waiting)."""
    return earliest_due(conn, "deliveries", True)


# -- receipts (docs/delivery.md) ------------------------------------------------------------
def receipt_time(value: Any, now: str) -> str:
    """A provider timestamp as ISO text: ISO-8601 string, or Unix seconds (int, or a string
    starting with digits); anything else (or nothing) is ``now``."""
    if isinstance(value, bool):
        return now
    if isinstance(value, int | float):
        try:
            return iso(datetime.fromtimestamp(value, UTC))
        except (OverflowError, OSError, ValueError):
            return now
    if isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return iso(dt)
        except OverflowError:  # year 1 east of UTC, or 9999 west of it: no UTC date
            return now
        except ValueError:
            digits = re.match(r"\d+", value)
            if digits:
                return receipt_time(int(digits.group()), now)
    return now


def find_for_receipt(
    conn: sqlite3.Connection,
    channel_id: str,
    provider_message_id: str | None,
    delivery_id: str | None,
) -> Delivery | None:
    """The delivery a receipt is about, always scoped to the channel it came in on."""
    if provider_message_id:
        row = conn.execute(
            f"""SELECT {COLUMNS} FROM deliveries WHERE channel_id = ? AND provider_message_id = ?
                ORDER BY inserted_at DESC LIMIT 1""",
            (channel_id, provider_message_id),
        ).fetchone()
    elif delivery_id:
        row = conn.execute(
            f"SELECT {COLUMNS} FROM deliveries WHERE id = ? AND channel_id = ?",
            (delivery_id, channel_id),
        ).fetchone()
    else:
        return None
    return from_row(Delivery, row) if row else None


def receipt_applies(current: str, new: str) -> bool:
    """Monotonic: ``failed`` overrides anything but ``read``; otherwise only forward moves,
    and nothing but ``failed`` moves a failed delivery. Unknown statuses never apply."""
    if new == "failed":
        return current != "read"
    if new not in RANK:
        return False
    return RANK[new] > RANK.get(current, -1) and RANK.get(current, -1) >= 0


def apply_receipt(
    conn: sqlite3.Connection,
    delivery: Delivery,
    status: str,
    at: str,
    error: str | None,
    now: str,
) -> Delivery | None:
    """Apply a receipt to ``delivery``; the updated row, or None when it does not apply."""
    if not receipt_applies(delivery.status, status):
        return None
    column = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at"}.get(status)
    sets = "status = ?, updated_at = ?"
    params: list[Any] = [status, now]
    if column:
        sets += f", {column} = ?"
        params.append(at)
    else:
        sets += ", last_error = ?"
        params.append(error)
    # The status in the WHERE makes the check and the change one atomic step.
    row = conn.execute(
        f"UPDATE deliveries SET {sets} WHERE id = ? AND status = ? RETURNING {COLUMNS}",
        (*params, delivery.id, delivery.status),
    ).fetchone()
    if row is None:
        return None
    updated = from_row(Delivery, row)
    if status == "failed":
        analytics.failure(conn, updated, error, now)
    analytics.outcome(conn, updated, status, now)
    return updated


def activities_for(conn: sqlite3.Connection, deliveries: list[Delivery]) -> dict[str, Activity]:
    """The activities of claimed deliveries, by id (what the workers send)."""
    from .activities import COLUMNS as ACOLS

    ids = list({d.activity_id for d in deliveries})
    out: dict[str, Activity] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT {ACOLS} FROM activities WHERE id IN ({marks})", chunk):
            out[r["id"]] = from_row(Activity, r)
    return out


def thread_senders(conn: sqlite3.Connection, deliveries: list[Delivery]) -> dict[str, str]:
    """``delivery id → sender_key`` for deliveries whose conversation began inbound on the
    delivery's own channel (a reply goes back to that sender), or has a thread on it
    (``store.threads``: a conversation routed there)."""
    ids = list({d.conversation_id for d in deliveries})
    keys: dict[str, tuple[str, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            f"""SELECT id, channel_id, sender_key FROM conversations
                 WHERE id IN ({marks}) AND sender_key IS NOT NULL""",
            chunk,
        ):
            keys[r["id"]] = (r["channel_id"], r["sender_key"])
    out: dict[str, str] = {}
    routed: list[Delivery] = []
    for d in deliveries:
        found = keys.get(d.conversation_id)
        if found and found[0] == d.channel_id:
            out[d.id] = found[1]
        else:
            routed.append(d)
    if routed:
        # A conversation routed here from another channel: the thread it has on this one.
        threaded = threads.keys(conn, list({(d.channel_id, d.conversation_id) for d in routed}))
        for d in routed:
            key = threaded.get((d.channel_id, d.conversation_id))
            if key is not None:
                out[d.id] = key
    return out


def reply_contexts(conn: sqlite3.Connection, deliveries: list[Delivery],
                   activities: dict[str, Activity]) -> dict[str, dict[str, Any]]:
    """``delivery id → metadata`` of the latest activity that came in on the delivery's channel
    in its conversation before the delivery's activity (the mail a reply answers)."""
    out: dict[str, dict[str, Any]] = {}
    for d in deliveries:
        act = activities.get(d.activity_id)
        if act is None:
            continue
        row = conn.execute(
            """SELECT metadata FROM activities
                WHERE conversation_id = ? AND seq < ? AND source_channel_id = ?
                ORDER BY seq DESC LIMIT 1""",
            (d.conversation_id, act.seq, d.channel_id),
        ).fetchone()
        if row is not None:
            value = json.loads(row[0])
            if isinstance(value, dict):
                out[d.id] = value
    return out


# -- every attempt of a delivery (m0013), shown on the delivery's page -----------------------
_RECORD_ATTEMPT = """INSERT INTO delivery_attempts (delivery_id, tenant_id, attempt, at, ok, status,
                           error, duration_ms)
       SELECT id, tenant_id, (SELECT count(*) FROM delivery_attempts WHERE delivery_id = ?) + 1,
              ?, ?, ?, ?, ?
         FROM deliveries WHERE id = ?"""


def record_attempt(conn: sqlite3.Connection, delivery_id: str, at: str, ok: bool, status: str,
                   error: str | None, duration_ms: int | None) -> None:
    """One attempt's outcome: numbered from 1 across retries by hand, the error in full."""
    conn.execute(_RECORD_ATTEMPT,
                 (delivery_id, at, int(ok), status, error, duration_ms, delivery_id))


def record_attempts(conn: sqlite3.Connection,
                    attempts: list[tuple[str, str, bool, str, str | None, int | None]]) -> None:
    """:func:`record_attempt` for many ``(delivery_id, at, ok, status, error, duration_ms)``,
    in order, with one statement."""
    if attempts:
        conn.executemany(_RECORD_ATTEMPT, [(d, at, int(ok), st, err, ms, d)
                                           for d, at, ok, st, err, ms in attempts])


def attempts_of(conn: sqlite3.Connection, delivery_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT attempt, at, ok, status, error, duration_ms FROM delivery_attempts
            WHERE delivery_id = ? ORDER BY id""", (delivery_id,)).fetchall()
    return [dict(r) for r in rows]


def retry_failed_where(conn: sqlite3.Connection, now: str, *, tenant_id: str | None = None,
                       channel_id: str | None = None, activity_id: str | None = None,
                       conversation_id: str | None = None) -> int:
    """Every failed delivery under the filters (those of the deliveries page) made due now
    with a fresh set of attempts; returns how many."""
    sql = """UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?,
                    attempts = 0
              WHERE status = 'failed' AND claim_token IS NULL"""
    params: list[Any] = [now, now]
    for col, value in (("tenant_id", tenant_id), ("channel_id", channel_id),
                       ("activity_id", activity_id), ("conversation_id", conversation_id)):
        if value:
            sql += f" AND {col} = ?"
            params.append(value)
    return conn.execute(sql, params).rowcount
