"""Conversation expiry (reference §13) and pruning of old health checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from store import maintenance
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
    """Delete channel health checks older than ``health_retention_days``."""
    before = iso(now - timedelta(days=ctx.settings.health_retention_days))
    return int(await ctx.db.write(maintenance.prune_health, before))
