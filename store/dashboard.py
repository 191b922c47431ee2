"""Read-only figures for the admin panel and the tenant portal: counts, channel health, and
the per-activity delivery badge of a conversation timeline."""

from __future__ import annotations

import sqlite3
from typing import Any

from .conversations import COLUMNS as CONVERSATION_COLUMNS
from .util import page

# Most advanced first: a badge shows the furthest any of an activity's deliveries got.
BADGE_ORDER = ("read", "delivered", "sent", "pending", "failed")


def _where(tenant_id: str | None) -> tuple[str, list[Any]]:
    return (" WHERE tenant_id = ?", [tenant_id]) if tenant_id else ("", [])


def counts(conn: sqlite3.Connection, tenant_id: str | None = None) -> dict[str, Any]:
    """Tenants, channels (total and per mode), conversations, activities, deliveries by status."""
    where, params = _where(tenant_id)
    modes = {r["mode"]: r["n"] for r in conn.execute(
        f"SELECT mode, count(*) AS n FROM channels{where} GROUP BY mode", params)}
    deliveries = {r["status"]: r["n"] for r in conn.execute(
        f"SELECT status, count(*) AS n FROM deliveries{where} GROUP BY status", params)}
    out: dict[str, Any] = {
        "channels": sum(modes.values()),
        "modes": {m: modes.get(m, 0) for m in ("inbound", "outbound", "duplex")},
        "conversations": conn.execute(
            f"SELECT count(*) FROM conversations{where}", params).fetchone()[0],
        "activities": conn.execute(f"SELECT count(*) FROM activities{where}", params).fetchone()[0],
        "deliveries": {s: deliveries.get(s, 0) for s in ("pending", "sent", "delivered", "read",
                                                          "failed")},
    }
    if tenant_id is None:
        out["tenants"] = conn.execute("SELECT count(*) FROM tenants").fetchone()[0]
    return out


def latest_health(conn: sqlite3.Connection, tenant_id: str | None = None) -> dict[str, dict[str, Any]]:
    """channel id -> its latest health check (status, failure_rate, total, checked_at)."""
    sql = """SELECT h.channel_id, h.status, h.failure_rate, h.total_deliveries, h.checked_at
               FROM channel_health_checks h JOIN channels c ON c.id = h.channel_id
              WHERE h.checked_at = (SELECT max(checked_at) FROM channel_health_checks
                                     WHERE channel_id = h.channel_id)"""
    params: list[Any] = []
    if tenant_id:
        sql += " AND c.tenant_id = ?"
        params.append(tenant_id)
    return {r["channel_id"]: dict(r) for r in conn.execute(sql, params)}


def names(conn: sqlite3.Connection, table: str, ids: set[str]) -> dict[str, str]:
    """id -> name for tenants or channels (for labelling tables)."""
    assert table in ("tenants", "channels")
    ids = {i for i in ids if i}
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, name FROM {table} WHERE id IN ({marks})", list(ids))
    return {r["id"]: r["name"] for r in rows}


def all_names(conn: sqlite3.Connection, table: str, tenant_id: str | None = None) -> list[tuple[str, str]]:
    """(id, name) of every tenant or channel, for filter selects."""
    assert table in ("tenants", "channels")
    if tenant_id and table == "channels":
        rows = conn.execute("SELECT id, name FROM channels WHERE tenant_id = ? ORDER BY name",
                            (tenant_id,))
    else:
        rows = conn.execute(f"SELECT id, name FROM {table} ORDER BY name")
    return [(r["id"], r["name"]) for r in rows]


def timeline(conn: sqlite3.Connection, conversation_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The last ``limit`` activities of a conversation in order, each with the status of every
    target it was sent to (``targets``: channel name, status, last error, delivery id, in
    channel-name order), the sender's display name when the provider gave one, and ``badge``
    (the furthest any delivery got; kept for API readers)."""
    rows = conn.execute(
        """SELECT id, seq, type, sender, text, inserted_at,
                  coalesce(json_extract(metadata, '$.profile_name'),
                           json_extract(metadata, '$.sender_name')) AS sender_name
             FROM activities
            WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?""",
        (conversation_id, limit),
    ).fetchall()
    items = [dict(r) for r in reversed(rows)]
    if not items:
        return items
    targets: dict[str, list[dict[str, Any]]] = {}
    marks = ",".join("?" * len(items))
    for r in conn.execute(
        f"""SELECT d.id, d.activity_id, d.status, d.last_error, d.attempts,
                   coalesce(c.name, '(deleted channel)') AS channel
              FROM deliveries d LEFT JOIN channels c ON c.id = d.channel_id
             WHERE d.activity_id IN ({marks}) ORDER BY c.name, d.id""",
        [i["id"] for i in items],
    ):
        targets.setdefault(r["activity_id"], []).append(
            {"delivery_id": r["id"], "channel": r["channel"], "status": r["status"],
             "error": r["last_error"], "attempts": r["attempts"]})
    for item in items:
        found = targets.get(item["id"], [])
        statuses = {t["status"] for t in found}
        item["badge"] = next((s for s in BADGE_ORDER if s in statuses), None)
        item["deliveries"] = len(found)
        item["targets"] = found
    return items


def retry_failed_of_channel(conn: sqlite3.Connection, channel_id: str, now: str,
                            tenant_id: str | None = None) -> int:
    """Make every failed delivery of a channel due now with a fresh set of attempts."""
    sql = """UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?,
                    attempts = 0
              WHERE channel_id = ? AND status = 'failed' AND claim_token IS NULL"""
    params: list[Any] = [now, now, channel_id]
    if tenant_id:
        sql += " AND tenant_id = ?"
        params.append(tenant_id)
    return conn.execute(sql, params).rowcount


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def conversation_page(conn: sqlite3.Connection, *, tenant_id: str | None = None,
                      channel_id: str | None = None, status: str | None = None,
                      q: str | None = None, limit: int = 50,
                      cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None, int]:
    """The conversations list of the panel: newest activity first (a conversation without
    activities by its creation), ``q`` matching the id, the contact (sender, WhatsApp profile
    name, thread sender) or a message's text; each row with its contact and last message; and
    the total under the filters."""
    inner = (f"SELECT {CONVERSATION_COLUMNS}, coalesce(last_activity_at, inserted_at) AS activity_at "
             "FROM conversations")
    sql = f"SELECT * FROM ({inner}) c WHERE 1=1"
    params: list[Any] = []
    for col, value in (("tenant_id", tenant_id), ("channel_id", channel_id), ("status", status)):
        if value:
            sql += f" AND c.{col} = ?"
            params.append(value)
    if q:
        like = _like(q)
        sql += """ AND (c.id LIKE ? ESCAPE '\\' OR c.sender_key LIKE ? ESCAPE '\\' OR EXISTS (
                     SELECT 1 FROM activities a WHERE a.conversation_id = c.id
                        AND (a.sender LIKE ? ESCAPE '\\' OR a.text LIKE ? ESCAPE '\\'
                             OR json_extract(a.metadata, '$.profile_name') LIKE ? ESCAPE '\\')))"""
        params += [like] * 5
    total = conn.execute(f"SELECT count(*) FROM ({sql}) AS matched", params).fetchone()[0]
    rows, nxt = page(conn, sql, params, limit=limit, cursor=cursor, order_col="activity_at")
    items = [dict(r) for r in rows]
    for item in items:
        recent = conn.execute(
            """SELECT seq, type, sender, text, source_channel_id,
                      json_extract(metadata, '$.profile_name') AS name
                 FROM activities WHERE conversation_id = ? ORDER BY seq DESC LIMIT 20""",
            (item["id"],)).fetchall()
        item["last"] = dict(recent[0]) if recent else None
        named = next((r["name"] for r in recent if r["name"]), None)
        inbound = next((r["sender"] for r in recent if r["source_channel_id"]), None)
        item["contact"] = named or inbound or item["sender_key"] or next(
            (r["sender"] for r in recent if r["sender"]), None)
    return items, nxt, total


def health_history(conn: sqlite3.Connection, channel_id: str,
                   limit: int = 96) -> list[dict[str, Any]]:
    """A channel's last ``limit`` health checks, oldest first (the channel page's sparkline)."""
    rows = conn.execute(
        """SELECT status, failure_rate, total_deliveries, checked_at FROM channel_health_checks
            WHERE channel_id = ? ORDER BY checked_at DESC LIMIT ?""",
        (channel_id, limit)).fetchall()
    return [dict(r) for r in reversed(rows)]
