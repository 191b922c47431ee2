"""Background downloads of inbound media (m0014 ``media_downloads``): one row per attachment of
an inbound activity that names a provider file, claimed by one process at a time (its
``next_attempt_at`` pushed past a lease), retried on a schedule, and the attachment's own
``status`` (``pending``, ``stored``, ``failed``) kept in the activity's JSON."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from . import feed


class Download(msgspec.Struct, kw_only=True):
    activity_id: str
    idx: int
    tenant_id: str
    channel_id: str
    attempts: int


def enqueue(conn: sqlite3.Connection, activity_id: str, tenant_id: str, channel_id: str,
            indexes: list[int], now: str) -> None:
    for idx in indexes:
        conn.execute(
            "INSERT INTO media_downloads (activity_id, idx, tenant_id, channel_id, "
            "status, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT DO NOTHING",
            (activity_id, idx, tenant_id, channel_id, now, now))


def claim_due(conn: sqlite3.Connection, now: str, lease_until: str, limit: int) -> list[Download]:
    """Pending downloads due at ``now``, claimed until ``lease_until`` (attempts counted)."""
    rows = conn.execute(
        "SELECT activity_id, idx, tenant_id, channel_id, attempts FROM media_downloads "
        "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ? "
        "/*skip_locked*/",  # PostgreSQL: rows another node is claiming are skipped (dialect)
        (now, limit)).fetchall()
    for r in rows:
        conn.execute("UPDATE media_downloads SET attempts = attempts + 1, next_attempt_at = ?, "
                     "updated_at = ? WHERE activity_id = ? AND idx = ?",
                     (lease_until, now, r[0], r[1]))
    return [Download(activity_id=r[0], idx=r[1], tenant_id=r[2], channel_id=r[3],
                     attempts=r[4] + 1) for r in rows]


def next_due(conn: sqlite3.Connection) -> str | None:
    (when,) = conn.execute("SELECT min(next_attempt_at) FROM media_downloads "
                           "WHERE status = 'pending'").fetchone()
    return None if when is None else str(when)


def finish(conn: sqlite3.Connection, d: Download, *, status: str, now: str,
           next_at: str | None = None, error: str | None = None, file_name: str | None = None,
           patch: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Record an attempt's outcome; ``patch`` is merged into the activity's attachment, and
    the ``attachment_status`` event saying so is added to the feed and returned (None when
    nothing changed in the activity)."""
    conn.execute(
        "UPDATE media_downloads SET status = ?, next_attempt_at = coalesce(?, next_attempt_at), "
        "last_error = ?, file_name = coalesce(?, file_name), updated_at = ? "
        "WHERE activity_id = ? AND idx = ?",
        (status, next_at, error, file_name, now, d.activity_id, d.idx))
    if not patch:
        return None
    row = conn.execute("SELECT attachments, conversation_id FROM activities WHERE id = ?",
                       (d.activity_id,)).fetchone()
    if row is None:
        return None
    atts = msgspec.json.decode(row[0])
    if not (0 <= d.idx < len(atts) and isinstance(atts[d.idx], dict)):
        return None
    # A None in ``patch`` removes the key (the error of an earlier attempt, once stored).
    merged = {**atts[d.idx], **patch}
    atts[d.idx] = {k: v for k, v in merged.items() if not (k in patch and patch[k] is None)}
    conn.execute("UPDATE activities SET attachments = ? WHERE id = ?",
                 (msgspec.json.encode(atts).decode(), d.activity_id))
    event = status_event(d.activity_id, row[1], d.idx, atts[d.idx], d.attempts)
    feed.append(conn, "m", row[1], event)
    return event


def status_event(activity_id: str, conversation_id: str, index: int,
                 attachment: dict[str, Any], attempts: int) -> dict[str, Any]:
    """The ``attachment_status`` event's payload (docs/realtime.md): which attachment of which
    activity, its ``status`` (``pending``, ``stored``, ``failed``), the ``error`` of the last
    attempt, the attempts so far, and the attachment as it now reads."""
    return {"activity_id": activity_id, "conversation_id": conversation_id, "index": index,
            "status": attachment.get("status"), "error": attachment.get("error"),
            "attempts": attempts, "attachment": attachment}


def for_activity(conn: sqlite3.Connection, activity_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT idx, status, attempts, last_error, file_name FROM media_downloads "
                        "WHERE activity_id = ? ORDER BY idx", (activity_id,)).fetchall()
    return [{"index": r[0], "status": r[1], "attempts": r[2], "error": r[3], "file_name": r[4]}
            for r in rows]


def upload(conn: sqlite3.Connection, tenant_id: str, upload_id: str) -> dict[str, Any] | None:
    """A tenant's upload by id (``upload_id`` in an attachment): its conversation and file."""
    r = conn.execute("SELECT conversation_id, file_name, name, content_type, size FROM uploads "
                     "WHERE id = ? AND tenant_id = ?", (upload_id, tenant_id)).fetchone()
    if r is None:
        return None
    return {"conversation_id": r[0], "file_name": r[1], "name": r[2], "content_type": r[3],
            "size": r[4]}
