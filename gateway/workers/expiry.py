"""Conversation expiry and pruning (docs/operations.md, "Background jobs"): old health checks,
finished alerts, with ``CONVERGER_DELIVERY_RETENTION_DAYS`` set finished deliveries, and for a
tenant on an SLA tier with ``retention_days`` its older activities (with their deliveries and
media) and uploads (docs/admin.md#sla-tiers)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from store import alerts, maintenance, queue, retention
from store.util import iso


async def run(ctx: Any, now: datetime) -> int:
    """Close active conversations idle for ``conversation_idle`` seconds. Returns how many."""
    idle = ctx.settings.conversation_idle
    if idle <= 0:
        return 0
    cutoff = iso(now - timedelta(seconds=idle))
    closed: int = await ctx.db.write(maintenance.expire_conversations, cutoff, iso(now))
    if closed:
        ctx.log.info("Closed %d expired conversations.", closed)
    return closed


PRUNE_BATCH = 2000


async def prune(ctx: Any, now: datetime) -> int:
    """Delete channel health checks, and alerts sent or failed, older than
    ``health_retention_days``; and, when ``delivery_retention_days`` is set, deliveries finished
    longer ago than that (in batches, so the single writer is never held for long). Returns how
    many rows went."""
    before = iso(now - timedelta(days=ctx.settings.health_retention_days))

    def tx(conn: Any) -> int:
        return int(maintenance.prune_health(conn, before)) + int(alerts.prune(conn, before))

    pruned = int(await ctx.db.write(tx))
    days = ctx.settings.delivery_retention_days
    if days > 0:
        cutoff = iso(now - timedelta(days=days))
        deleted = 0
        while ids := await ctx.db.read(queue.finished_before, cutoff, PRUNE_BATCH):
            deleted += int(await ctx.db.write(queue.delete_finished, ids, cutoff))
            if len(ids) < PRUNE_BATCH:
                break
        if deleted:
            ctx.log.info("Pruned %d deliveries finished before %s.", deleted, cutoff)
        pruned += deleted
    return pruned + await prune_retention(ctx, now)


async def prune_retention(ctx: Any, now: datetime) -> int:
    """Each tenant on a tier with ``retention_days``: its activities (their deliveries and media
    downloads cascade) and uploads older than that, in batches; their files after each batch
    commits. Returns how many activities and uploads went."""
    pruned = 0
    for tenant_id, days in await ctx.db.read(retention.tenants):
        before = iso(now - timedelta(days=days))
        where = Path(ctx.settings.data_dir) / "uploads" / tenant_id
        files: list[str] = []
        while ids := await ctx.db.read(retention.old_activities, tenant_id, before, PRUNE_BATCH):
            gone, media = await ctx.db.write(retention.delete_activities, tenant_id, ids)
            pruned += gone
            files += media
            if len(ids) < PRUNE_BATCH:
                break
        while True:
            uploads = await ctx.db.write(retention.delete_old_uploads, tenant_id, before,
                                         PRUNE_BATCH)
            pruned += len(uploads)
            files += uploads
            if len(uploads) < PRUNE_BATCH:
                break
        if files:
            await asyncio.to_thread(_unlink, where, files)
        if pruned:
            ctx.log.info("Pruned %d activities and uploads of tenant %s older than %d days.",
                         pruned, tenant_id, days)
    return pruned


def _unlink(where: Path, names: list[str]) -> None:
    for name in names:
        path = where / name
        if path.parent == where:  # a stored name, never a path elsewhere
            path.unlink(missing_ok=True)
