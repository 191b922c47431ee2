"""Conversation expiry and pruning (docs/operations.md, "Background jobs"): old health checks,
finished alerts and, with ``CONVERGER_DELIVERY_RETENTION_DAYS`` set, finished deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from store import alerts, maintenance, queue
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
    return pruned
