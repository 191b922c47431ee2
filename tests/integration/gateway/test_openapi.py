"""The OpenAPI document served by the real server (its content, every route documented with
its auth and errors: tests/unit/gateway/test_openapi.py)."""

from tests.support.api import Api


async def test_served_document(api: Api) -> None:
    doc = await api.ok("GET", "/api/openapi.json")
    assert doc["openapi"] == "3.1.0"
    assert "/api/v1/conversations/{conversation_id}/activities" in doc["paths"]
    assert "Problem" in doc["components"]["schemas"]
