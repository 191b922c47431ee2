"""Per-channel delivery pacing at a tenant's SLA tier rate (gateway/ratelimit.py
``DeliveryLimiter.acquire(channel, per_second)``, docs/admin.md#sla-tiers): the tier's rate
overrides the gateway-wide one for that channel only. Injected clock, nothing sleeps."""

from __future__ import annotations

from gateway.ratelimit import DeliveryLimiter


def test_a_tier_rate_paces_its_channel_and_no_other() -> None:
    now = [100.0]
    limiter = DeliveryLimiter(0, clock=lambda: now[0])  # the gateway: unpaced
    assert [limiter.acquire("free-hook") for _ in range(3)] == [0.0, 0.0, 0.0]
    # 120 deliveries per minute = 2 per second: a burst of one second's worth, then 0.5 s apart.
    delays = [limiter.acquire("tier-hook", 2.0) for _ in range(5)]
    assert delays == [0.0, 0.0, 0.5, 1.0, 1.5]
    now[0] += 10.0
    assert limiter.acquire("tier-hook", 2.0) == 0.0
    assert limiter.acquire("free-hook") == 0.0
