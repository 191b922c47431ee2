"""Rate limits in-process: the GCRA limiter and the delivery pacer with an injected clock, and
the scopes of ``ctx.rate_limit`` (each scope on a real server: tests/integration/ops/test_ratelimit.py)."""

from __future__ import annotations

from gateway.ratelimit import DeliveryLimiter, Limiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_limiter_allows_a_burst_then_paces() -> None:
    clock = Clock()
    lim = Limiter(clock)
    decisions = [lim.hit("k", 10, 60.0) for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    denied = decisions[-1]
    assert denied.retry_after == 6.0 and denied.reset == 60.0
    clock.t += 5.9
    assert not lim.hit("k", 10, 60.0).allowed
    clock.t += 0.1
    assert lim.hit("k", 10, 60.0).allowed  # one slot came back after window/limit
    assert lim.hit("other", 10, 60.0).allowed  # keys are independent
    clock.t += 60.0
    assert all(lim.hit("k", 10, 60.0).allowed for _ in range(10))


def test_limiter_forgets_idle_keys() -> None:
    clock = Clock()
    lim = Limiter(clock)
    for i in range(100):
        lim.hit(f"k{i}", 10, 60.0)
    clock.t += 3600
    lim.hit("fresh", 10, 60.0)
    assert len(lim) == 1


def test_delivery_limiter_paces_per_channel() -> None:
    clock = Clock()
    lim = DeliveryLimiter(5, clock)
    delays = [lim.acquire("c1") for _ in range(10)]
    assert delays[:5] == [0.0] * 5  # one second's burst
    assert all(
        abs(a - b) < 1e-9 for a, b in zip(delays[5:], [0.2, 0.4, 0.6, 0.8, 1.0], strict=True))
    assert lim.acquire("c2") == 0.0
    assert DeliveryLimiter(0, clock).acquire("c1") == 0.0


async def test_cg_token_scope_shares_one_bucket_per_ip(tmp_path) -> None:
    """The Converger token routes (generate and refresh) share the ``cg_token`` bucket, separate
    from ``token_create``; called here through ``ctx.rate_limit`` as those routes do."""
    from types import SimpleNamespace

    import pytest

    from gateway import config, errors
    from gateway.app import create_app

    app = create_app(config.load({}, data_dir=str(tmp_path), secret_key="k" * 40))

    def request(ip: str) -> SimpleNamespace:
        return SimpleNamespace(ip=ip, headers={}, ctx=SimpleNamespace(), app=app)

    for _ in range(10):
        await app.ctx.rate_limit(request("10.0.0.1"), "cg_token")
    with pytest.raises(errors.ApiError) as exc:
        await app.ctx.rate_limit(request("10.0.0.1"), "cg_token")
    assert exc.value.status == 429 and exc.value.headers["RateLimit-Policy"] == '"cg_token";q=10;w=60'
    await app.ctx.rate_limit(request("10.0.0.1"), "token_create")  # another scope
    await app.ctx.rate_limit(request("10.0.0.2"), "cg_token")  # another client
