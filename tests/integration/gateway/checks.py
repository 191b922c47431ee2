"""Assertions shared by the compat and management tests (problem+json shape)."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api

NIL = "00000000-0000-4000-8000-000000000000"


def problem(result: tuple[int, Any, Any], status: int, member: str = "errors",
            code: str | None = None) -> dict[str, Any]:
    """``result`` (from ``Api.call``) is an RFC 9457 problem with ``status`` that carries the
    original's ``member`` (``errors`` or ``error``). Returns the body."""
    got, body, headers = result
    assert got == status, f"expected {status}, got {got}: {body}"
    assert headers["content-type"].startswith("application/problem+json"), headers["content-type"]
    assert isinstance(body, dict), body
    for key in ("type", "title", "status", "detail", "code"):
        assert key in body, (key, body)
    assert body["status"] == status
    assert body["type"] == f"urn:converger:problem:{body['code']}"
    assert member in body, (member, body)
    if code is not None:
        assert body["code"] == code, body
    return body


async def call(api: Api, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
    return await api.call(method, path, **kw)


def key(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key}


def tok(token: str) -> dict[str, str]:
    return {"x-channel-token": token}
