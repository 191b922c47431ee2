"""gateway/versioning.py: the deprecation setting, the header formats, route matching, and the
OpenAPI document's marks (the served headers: tests/integration/ops/test_api_versioning.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import config, versioning
from gateway.api.openapi import document


def test_parse_and_headers() -> None:
    (d,) = versioning.parse(" get /api/v1/tokens 2026-01-31 2027-06-30T12:00:00+02:00 https://x.example/n ")
    assert (d.method, d.path) == ("GET", "/api/v1/tokens")
    assert d.headers() == {"Deprecation": f"@{int(datetime(2026, 1, 31, tzinfo=UTC).timestamp())}",
                           "Sunset": "Wed, 30 Jun 2027 10:00:00 GMT",
                           "Link": '<https://x.example/n>; rel="deprecation"'}
    assert versioning.parse("") == () and versioning.parse(" ; ") == ()
    two = versioning.parse("GET /a/ 2026-01-01;DELETE /b 2026-01-01 2026-01-01")
    assert [(x.path, x.sunset is None) for x in two] == [("/a", True), ("/b", False)]
    assert set(two[0].headers()) == {"Deprecation"}


@pytest.mark.parametrize("bad", [
    "GET /api/v1/tokens", "FETCH /api/v1/tokens 2026-01-01", "GET api/v1 2026-01-01",
    "GET /api/v1/tokens 31/01/2026", "GET /api/v1/tokens 2027-01-01 2026-01-01",
    "GET /api/v1/tokens 2026-01-01 2027-01-01 ftp://x", "GET /a 2026-01-01 2027-01-01 https://x extra",
])
def test_bad_settings_refuse_to_start(bad: str) -> None:
    with pytest.raises(config.ConfigError, match="CONVERGER_DEPRECATED_ROUTES"):
        config.load({"CONVERGER_DEPRECATED_ROUTES": bad})


def test_route_forms_and_versions() -> None:
    assert versioning.openapi_path("api/v1/conversations/<conversation_id:str>/activities") == \
        "/api/v1/conversations/{conversation_id}/activities"
    assert versioning.openapi_path("/livez") == "/livez"
    assert versioning.version_of("/api/v2/things") == "2"
    assert versioning.version_of("/api/v1") == "1"
    assert versioning.version_of("/api/admin/tenants") == versioning.API_VERSION == "1"
    assert versioning.version_of("/api/v2x") == "1"


def test_operator_marks_win_over_the_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    code = versioning.Deprecation("GET", "/api/v1/tokens", datetime(2025, 1, 1, tzinfo=UTC))
    monkeypatch.setattr(versioning, "DEPRECATED", (code,))
    assert versioning.deprecations("") == (code,)
    (mine,) = versioning.deprecations("GET /api/v1/tokens 2026-01-01")
    assert mine.since.year == 2026


def test_openapi_marks_only_the_deprecated() -> None:
    marked = versioning.parse("POST /api/v1/conversations 2026-01-01 2026-12-31")
    doc = document(marked)
    op = doc["paths"]["/api/v1/conversations"]["post"]
    assert op["deprecated"] is True and op["x-sunset"].startswith("2026-12-31")
    assert sum(bool(o.get("deprecated")) for ops in doc["paths"].values() for o in ops.values()) == 1
    assert not any(o.get("deprecated") for ops in document()["paths"].values() for o in ops.values())
