"""Conversation expiry (reference §13) and pruning of old health checks and finished alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from store import alerts, maintenance
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


async def prune(ctx: Any, now: datetime) -> int:
    """Delete channel health checks, and alerts sent or failed, older than
    ``health_retention_days``. Returns how many rows went."""
    before = iso(now - timedelta(days=ctx.settings.health_retention_days))

    def tx(conn: Any) -> int:
        return int(maintenance.prune_health(conn, before)) + int(alerts.prune(conn, before))

    return int(await ctx.db.write(tx))
