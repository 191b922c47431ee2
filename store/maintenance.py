"""The background jobs' data work (docs/operations.md, "Background jobs"): channel health
checks, conversation expiry and pruning. Synchronous, connection first, never commits."""

from __future__ import annotations

import sqlite3

import msgspec

from .util import new_id

#: Channel types whose deliveries leave the process and can fail (the original's list); the
#: health worker passes the adapters' own list (every delivering type).
HEALTH_TYPES = ("webhook", "whatsapp_meta", "whatsapp_infobip")
DEGRADED_AT = 0.10
UNHEALTHY_AT = 0.50


class HealthResult(msgspec.Struct, kw_only=True):
    """One channel's check, with what an alert needs."""

    channel_id: str
    channel_name: str
    channel_type: str
    tenant_id: str
    status: str
    previous_status: str | None
    total_deliveries: int
    failed_deliveries: int
    failure_rate: float
    checked_at: str
    alert_webhook_url: str | None

    @property
    def changed(self) -> bool:
        """A change from the previous check. A channel's first check is one when it finds the
        channel degraded or unhealthy (the original never alerted then: "no alerts yet" beside
        an unhealthy channel); a first check that finds it healthy or idle is not."""
        if self.previous_status is None:
            return self.status in ("degraded", "unhealthy")
        return self.previous_status != self.status


def classify(total: int, failed: int) -> tuple[str, float]:
    """``(status, failure_rate)``: unknown without traffic, else ≥ 0.50 unhealthy, ≥ 0.10
    degraded, rate rounded to 4 decimals. These are the original's thresholds, kept although its
    own comment said "unhealthy above 50 %": what its operators saw is what they expect."""
    if total == 0:
        return "unknown", 0.0
    rate = round(failed / total, 4)
    if rate >= UNHEALTHY_AT:
        return "unhealthy", rate
    if rate >= DEGRADED_AT:
        return "degraded", rate
    return "healthy", rate


def check_channels(conn: sqlite3.Connection, since: str, now: str,
                   types: tuple[str, ...] = HEALTH_TYPES) -> list[HealthResult]:
    """Check every active channel of ``types`` over deliveries inserted after ``since``;
    insert one ``channel_health_checks`` row each. Pending deliveries count in the total."""
    marks = ",".join("?" * len(types))
    channels = conn.execute(
        f"""SELECT c.id, c.name, c.type, c.tenant_id, t.alert_webhook_url
              FROM channels c JOIN tenants t ON t.id = c.tenant_id
             WHERE c.status = 'active' AND c.type IN ({marks})
             ORDER BY c.id""",
        tuple(types),
    ).fetchall()
    return [_check(conn, ch, since, now) for ch in channels]


def mark_unhealthy(conn: sqlite3.Connection, channel_id: str, since: str,
                   now: str) -> HealthResult | None:
    """Record the channel ``unhealthy`` now, whatever its failure rate (its provider refused
    its credentials: nothing it sends can succeed). None when no such active channel."""
    ch = conn.execute(
        """SELECT c.id, c.name, c.type, c.tenant_id, t.alert_webhook_url
             FROM channels c JOIN tenants t ON t.id = c.tenant_id
            WHERE c.id = ? AND c.status = 'active'""",
        (channel_id,),
    ).fetchone()
    return _check(conn, ch, since, now, force="unhealthy") if ch else None


def _check(conn: sqlite3.Connection, ch: sqlite3.Row, since: str, now: str,
           force: str | None = None) -> HealthResult:
    total, failed = conn.execute(
        """SELECT count(*), coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM deliveries
            WHERE channel_id = ? AND inserted_at > ? AND status != 'skipped'""",
        (ch["id"], since),
    ).fetchone()
    prev = conn.execute(
        """SELECT status FROM channel_health_checks WHERE channel_id = ?
            ORDER BY checked_at DESC, inserted_at DESC LIMIT 1""",
        (ch["id"],),
    ).fetchone()
    status, rate = classify(total, failed)
    status = force or status
    conn.execute(
        """INSERT INTO channel_health_checks (id, channel_id, tenant_id, status, total_deliveries,
               failed_deliveries, failure_rate, checked_at, inserted_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (new_id(), ch["id"], ch["tenant_id"], status, total, failed, rate, now, now),
    )
    return HealthResult(
        channel_id=ch["id"], channel_name=ch["name"], channel_type=ch["type"],
        tenant_id=ch["tenant_id"], status=status, previous_status=prev["status"] if prev else None,
        total_deliveries=total, failed_deliveries=failed, failure_rate=rate, checked_at=now,
        alert_webhook_url=ch["alert_webhook_url"] or None,
    )


def latest_health(conn: sqlite3.Connection, channel_id: str) -> dict[str, object] | None:
    row = conn.execute(
        """SELECT status, total_deliveries, failed_deliveries, failure_rate, checked_at
             FROM channel_health_checks WHERE channel_id = ?
            ORDER BY checked_at DESC, inserted_at DESC LIMIT 1""",
        (channel_id,),
    ).fetchone()
    return dict(row) if row else None


def prune_health(conn: sqlite3.Connection, before: str) -> int:
    """Delete health checks made before ``before``. Returns how many."""
    return conn.execute("DELETE FROM channel_health_checks WHERE checked_at < ?", (before,)).rowcount


def expire_conversations(conn: sqlite3.Connection, cutoff: str, now: str) -> int:
    """Close active conversations created before ``cutoff`` with no activity after it
    (the original's idle expiry). ``last_activity_at`` is kept by every activity insert. Returns how many."""
    return conn.execute(
        """UPDATE conversations SET status = 'closed', updated_at = ?
            WHERE status = 'active' AND inserted_at < ?
              AND (last_activity_at IS NULL OR last_activity_at <= ?)""",
        (now, cutoff, cutoff),
    ).rowcount
