"""A tier's ``retention_days`` (docs/admin.md#sla-tiers): a tenant's activities older than that
go, with their deliveries and media downloads (``ON DELETE CASCADE``), and so do its uploaded
files older than that. The ``prune`` job runs it in batches (gateway/workers/expiry.py) and
removes the files of what went after each batch commits."""

from __future__ import annotations

import sqlite3


def tenants(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """``(tenant_id, retention_days)`` of every tenant on a tier that sets it."""
    return [(r[0], int(r[1])) for r in conn.execute(
        """SELECT tt.tenant_id, t.retention_days FROM tenant_tiers tt
             JOIN sla_tiers t ON t.id = tt.tier_id
            WHERE t.retention_days IS NOT NULL ORDER BY tt.tenant_id""")]


def old_activities(conn: sqlite3.Connection, tenant_id: str, before: str, limit: int
                   ) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM activities WHERE tenant_id = ? AND inserted_at < ? LIMIT ?",
        (tenant_id, before, limit))]


def delete_activities(conn: sqlite3.Connection, tenant_id: str, ids: list[str]
                      ) -> tuple[int, list[str]]:
    """Delete these activities of the tenant (their deliveries and media downloads with them);
    returns how many went and the stored media files to remove."""
    if not ids:
        return 0, []
    marks = ", ".join("?" * len(ids))
    files = [r[0] for r in conn.execute(
        f"""SELECT file_name FROM media_downloads WHERE tenant_id = ? AND activity_id IN ({marks})
              AND file_name IS NOT NULL""", (tenant_id, *ids))]
    gone = conn.execute(f"DELETE FROM activities WHERE tenant_id = ? AND id IN ({marks})",
                        (tenant_id, *ids)).rowcount
    return int(gone), files


def delete_old_uploads(conn: sqlite3.Connection, tenant_id: str, before: str, limit: int
                       ) -> list[str]:
    """Delete up to ``limit`` of the tenant's uploads older than ``before``; their files."""
    rows = conn.execute(
        "SELECT id, file_name FROM uploads WHERE tenant_id = ? AND inserted_at < ? LIMIT ?",
        (tenant_id, before, limit)).fetchall()
    if rows:
        marks = ", ".join("?" * len(rows))
        conn.execute(f"DELETE FROM uploads WHERE id IN ({marks})", [r[0] for r in rows])
    return [r[1] for r in rows]
