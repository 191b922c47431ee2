"""The server answers its health probes, and every response carries a request id."""

from tests.support.api import Api


async def test_livez_and_readyz(api: Api) -> None:
    status, body, headers = await api.call("GET", "/livez")
    assert status == 200 and body == {"status": "ok"}
    assert headers.get("x-request-id")
    status, body, _ = await api.call("GET", "/readyz")
    assert status == 200
    assert body["checks"]["database"]["ok"] is True


async def test_request_id_is_echoed_when_sane(api: Api) -> None:
    _, _, headers = await api.call("GET", "/livez", headers={"x-request-id": "abc-123"})
    assert headers["x-request-id"] == "abc-123"
