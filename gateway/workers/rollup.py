"""The analytics rollup job (docs/analytics.md): minutes folded into hours, hours into days, old
buckets dropped — one transaction per run. The scheduler runs it, and only the process that
holds the scheduler's lease runs the scheduler (``--workers N``); the fold recomputes what it
writes, so a run repeated (a lease that moved mid-run) changes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from store import analytics


async def run(ctx: Any, now: datetime) -> dict[str, int]:
    result: dict[str, int] = await ctx.db.write(analytics.fold, int(now.timestamp()))
    return result
