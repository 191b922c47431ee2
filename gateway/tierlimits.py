"""SLA tier limits applied (docs/admin.md#sla-tiers): each tenant's tier, cached a few seconds
per process (a change made through this process is seen at once; other worker processes see it
within ``TTL``), and what it sets — activities per minute (the ``activity_create`` rate limit,
429 with the usual ``RateLimit*``/``Retry-After`` headers), deliveries per minute per channel
(paced, never failed), the largest upload. A limit left empty on the tier (or a tenant on no
tier) is the gateway-wide setting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from store import tiers
from store.tiers import Tier

TTL = 5.0
MAX_ITEMS = 10_000


class TierCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._items: dict[str, tuple[float, Tier | None]] = {}

    async def get(self, db: Any, tenant_id: str) -> Tier | None:
        now = self.clock()
        hit = self._items.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        return await self.load(db, tenant_id, now)

    def fresh(self, tenant_id: str) -> tuple[bool, Tier | None]:
        """(True, the tier) when the cache holds it, fresh; else (False, None): no await for
        the hot path's usual case."""
        hit = self._items.get(tenant_id)
        if hit is not None and hit[0] > self.clock():
            return True, hit[1]
        return False, None

    async def load(self, db: Any, tenant_id: str, now: float | None = None) -> Tier | None:
        now = self.clock() if now is None else now
        tier: Tier | None = await db.read(tiers.of_tenant, tenant_id)
        if len(self._items) >= MAX_ITEMS:
            self._items.clear()
        self._items[tenant_id] = (now + TTL, tier)
        return tier

    def peek(self, tenant_id: str) -> Tier | None:
        """The cached tier without a read (None when unknown or stale): the delivery pacing
        runs where an await per delivery would cost too much; :meth:`get` fills it."""
        hit = self._items.get(tenant_id)
        return hit[1] if hit is not None and hit[0] > self.clock() else None

    def forget(self) -> None:
        """After a tier or a tenant's tier changed."""
        self._items.clear()


CACHE = TierCache()


async def of(ctx: Any, tenant_id: str) -> Tier | None:
    return await CACHE.get(ctx.db, tenant_id)


async def upload_cap(ctx: Any, tenant_id: str) -> int:
    """The largest upload the tenant may make: its tier's, never above the gateway's."""
    cap: int = ctx.settings.max_upload_bytes
    tier = await of(ctx, tenant_id)
    if tier is not None and tier.max_upload_bytes is not None:
        cap = min(cap, tier.max_upload_bytes)
    return cap
