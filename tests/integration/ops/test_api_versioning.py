"""The API versioning policy (docs/api-versioning.md) on the real server: every answer carries
``API-Version``; a route marked deprecated (here by ``CONVERGER_DEPRECATED_ROUTES``) answers with
``Deprecation`` (RFC 9745) and ``Sunset`` (RFC 8594) and the OpenAPI document lists it so."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tests.support.api import Api

SINCE = datetime(2026, 1, 31, tzinfo=UTC)
SUNSET = datetime(2027, 6, 30, 12, 0, tzinfo=UTC)
NOTICE = "https://example.com/converger/api-versioning"
MARKED = "/api/v1/routing_rules/{rule_id}"


async def test_deprecated_route_headers_and_openapi(make_server, session) -> None:
    srv = make_server(env={"CONVERGER_DEPRECATED_ROUTES":
                           f"get /api/v1/routing_rules/{{id}} 2026-01-31 2027-06-30T12:00:00Z {NOTICE}; "
                           "POST /api/v1/tokens 2026-02-01"})
    api = Api(session, srv.url)
    s = await api.setup("versioning")
    h = {"x-api-key": s["api_key"]}
    status, _, listed = await api.call("GET", "/api/v1/routing_rules", headers=h)
    assert status == 200 and listed["API-Version"] == "1"
    assert "Deprecation" not in listed and "Sunset" not in listed  # only the marked route
    # The marked route: its answers (a 404 too) carry the deprecation and the sunset.
    status, _, got = await api.call(
        "GET", "/api/v1/routing_rules/00000000-0000-4000-8000-000000000000", headers=h)
    assert status == 404
    assert got["Deprecation"] == f"@{int(SINCE.timestamp())}"
    assert parsedate_to_datetime(got["Sunset"]) == SUNSET and got["Sunset"].endswith(" GMT")
    assert got["Link"] == f'<{NOTICE}>; rel="deprecation"'
    assert got["API-Version"] == "1"
    # Another method on the same path is not marked.
    _, _, patched = await api.call(
        "PATCH", "/api/v1/routing_rules/00000000-0000-4000-8000-000000000000", headers=h,
        json={"routing_rule": {"enabled": False}})
    assert "Deprecation" not in patched
    # A deprecation without a sunset sends no Sunset.
    _, _, tok = await api.call("POST", "/api/v1/tokens", json={})
    assert tok["Deprecation"] == f"@{int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())}"
    assert "Sunset" not in tok

    doc = await api.ok("GET", "/api/openapi.json")
    op = doc["paths"][MARKED]["get"]
    assert op["deprecated"] is True and op["x-sunset"] == SUNSET.isoformat()
    assert doc["paths"]["/api/v1/tokens"]["post"]["deprecated"] is True
    assert "deprecated" not in doc["paths"][MARKED]["patch"]
    assert not any(o.get("deprecated") for p, ops in doc["paths"].items() for m, o in ops.items()
                   if (m, p) not in (("get", MARKED), ("post", "/api/v1/tokens")))
    assert op["responses"]["200"]["headers"]["API-Version"]["schema"] == {"type": "string"}
    assert doc["info"]["x-api-version"] == "1"


async def test_every_answer_carries_the_api_version(api: Api) -> None:
    """Success, problem, unknown route, pages, health and metrics alike."""
    for method, path in (("GET", "/livez"), ("GET", "/api/openapi.json"), ("GET", "/metrics"),
                         ("GET", "/api/v1/conversations/nope"), ("GET", "/no/such/route"),
                         ("POST", "/api/v1/tokens"), ("GET", "/api/admin/tenants")):
        status, _, headers = await api.call(method, path)
        assert headers.get("API-Version") == "1", (method, path, status, dict(headers))
        assert "Deprecation" not in headers  # nothing is deprecated unless marked

