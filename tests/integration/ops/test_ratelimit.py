"""Rate limits: the GCRA limiter with an injected clock, and each scope on a real server."""

from __future__ import annotations

from collections.abc import Callable

from gateway.ratelimit import DeliveryLimiter, Limiter
from tests.support.api import Api
from tests.support.server import Server


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


async def test_token_endpoint_is_limited_per_ip(make_server: Callable[..., Server], session) -> None:
    srv = make_server(env={"CONVERGER_RATE_LIMIT_TOKENS": "10"})
    api = Api(session, srv.url)
    s = await api.setup("rl")
    body = {"conversation_id": s["conversation"]["id"], "user_id": "u1"}
    for _ in range(10):
        status, _, headers = await api.call("POST", "/api/v1/tokens", json=body,
                                            headers={"x-channel-token": s["channel_token"]})
        assert status == 201
        assert headers["RateLimit-Policy"] == '"token_create";q=10;w=60'
    status, body429, headers = await api.call("POST", "/api/v1/tokens", json=body,
                                              headers={"x-channel-token": s["channel_token"]})
    assert status == 429
    assert headers["content-type"] == "application/problem+json"
    assert body429["error"] == "Too many requests. Please try again later."
    assert body429["code"] == "rate_limited" and body429["status"] == 429
    assert 1 <= int(headers["Retry-After"]) <= 6
    assert headers["RateLimit"].startswith('"token_create";r=0;t=')
    assert headers["RateLimit-Policy"] == '"token_create";q=10;w=60'
    # The limit is checked before anything else: even a request without a token is refused.
    status, _, _ = await api.call("POST", "/api/v1/tokens", json={})
    assert status == 429


async def test_activity_creation_is_limited_per_tenant(make_server, session) -> None:
    srv = make_server(env={"CONVERGER_RATE_LIMIT_ACTIVITIES": "5"})
    api = Api(session, srv.url)
    a = await api.setup("tenant-a")
    b = await api.setup("tenant-b")
    for i in range(5):
        await api.post_activity(a["conversation"]["id"], a["api_key"], text=f"m{i}")
    status, body, headers = await api.call(
        "POST", f"/api/v1/conversations/{a['conversation']['id']}/activities",
        json={"text": "over"}, headers={"x-api-key": a["api_key"]})
    assert status == 429 and body["error"] == "Too many requests. Please try again later."
    assert int(headers["Retry-After"]) >= 1
    assert headers["RateLimit-Policy"] == '"activity_create";q=5;w=60'
    # Another tenant is not affected.
    await api.post_activity(b["conversation"]["id"], b["api_key"], text="fine")


async def test_limits_can_be_disabled(make_server, session) -> None:
    srv = make_server(env={"CONVERGER_RATE_LIMIT_ACTIVITIES": "0", "CONVERGER_RATE_LIMIT_TOKENS": "0"})
    api = Api(session, srv.url)
    a = await api.setup("free")
    for i in range(30):
        await api.post_activity(a["conversation"]["id"], a["api_key"], text=f"m{i}")


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
