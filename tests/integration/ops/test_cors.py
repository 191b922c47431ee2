"""CORS from CORS_ORIGINS at run time; preflights answered before routing (reference §14.2)."""

from __future__ import annotations

from tests.support.api import Api
from tests.support.postgres import store_independent

pytestmark = store_independent("CORS headers and preflights, answered before routing")

ORIGIN = "https://app.example.com"


async def test_preflight_from_allowed_origin(make_server, session) -> None:
    srv = make_server(env={"CORS_ORIGINS": f"{ORIGIN},https://other.example"})
    api = Api(session, srv.url)
    for path in ("/api/v1/conversations/x/activities", "/no/such/path", "/api/v1/tokens"):
        status, body, h = await api.call("OPTIONS", path, headers={
            "origin": ORIGIN, "access-control-request-method": "POST",
            "access-control-request-headers": "x-idempotency-key,content-type"})
        assert status == 204, (path, body)
        assert h["access-control-allow-origin"] == ORIGIN
        assert h["access-control-allow-credentials"] == "true"
        assert h["access-control-max-age"] == "1728000"
        assert h["access-control-allow-methods"] == "GET,POST,PUT,PATCH,DELETE,OPTIONS"
        allowed = h["access-control-allow-headers"].split(",")
        assert "x-idempotency-key" in allowed and "x-api-key" in allowed and "x-channel-token" in allowed
        assert h["vary"] == "Origin"


async def test_preflight_from_refused_origin(make_server, session) -> None:
    srv = make_server(env={"CONVERGER_CORS_ORIGINS": ORIGIN})
    api = Api(session, srv.url)
    status, _, h = await api.call("OPTIONS", "/api/v1/tokens", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert status == 204
    assert "access-control-allow-origin" not in h
    assert "access-control-allow-credentials" not in h
    assert "access-control-allow-headers" not in h
    assert h["vary"] == "Origin"


async def test_actual_requests(make_server, session) -> None:
    srv = make_server(env={"CORS_ORIGINS": ORIGIN})
    api = Api(session, srv.url)
    status, _, h = await api.call("GET", "/livez", headers={"origin": ORIGIN})
    assert status == 200
    assert h["access-control-allow-origin"] == ORIGIN
    assert h["access-control-allow-credentials"] == "true"
    assert "x-request-id" in h["access-control-expose-headers"]
    assert "Origin" in h["vary"]
    # Errors carry the headers too, so a browser can read the problem body.
    status, _, h = await api.call("GET", "/api/v1/conversations/nope", headers={"origin": ORIGIN})
    assert status in (400, 401, 404) and h["access-control-allow-origin"] == ORIGIN
    status, _, h = await api.call("GET", "/livez", headers={"origin": "https://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in h
    status, _, h = await api.call("GET", "/livez")
    assert "access-control-allow-origin" not in h
