"""Regression tests for what the fuzzing found beyond the schema: bytes that are not UTF-8 in
header values, and non-ASCII credentials, were 500s (an ``UnicodeEncodeError`` hashing the API
key or storing the idempotency key; a ``TypeError`` from ``hmac.compare_digest`` on non-ASCII
``str`` in admin tokens, session cookies and CSRF tokens). Raw sockets send the exact bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.api import Api
from tests.support.server import Server


async def raw_request(server: Server, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head + b"Content-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer


@pytest.fixture
async def world(api: Api) -> dict[str, Any]:
    return await api.setup("bad-bytes")


@pytest.mark.parametrize("header", [
    b"x-api-key: \xff\xfe",
    b"x-channel-token: \xff.\xfe.\xfd",
    b"authorization: Bearer \xe4\xff",
    b"x-idempotency-key: \xff",
    b"x-converger-signature: \xff",
    b"cookie: _converger_portal=\xff.\xff",
    b"x-request-id: \xff",
])
async def test_undecodable_header_bytes_are_a_400(header: bytes, world: dict[str, Any],
                                                  server: Server) -> None:
    conv = world["conversation"]["id"].encode()
    for path in (b"/api/v1/conversations/" + conv + b"/activities", b"/api/admin/tenants",
                 b"/portal/users", b"/livez"):
        status, answer = await raw_request(
            server, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + header + b"\r\n", b'{"text": "x"}')
        assert status == 400, (header, path, answer[:300])
        assert b"invalid_header" in answer


async def test_non_ascii_credentials_are_refused_not_500(api: Api, world: dict[str, Any],
                                                         server: Server) -> None:
    """Valid UTF-8, but not ASCII: compared as bytes, so simply not a match."""
    errors_before = server.log_path.read_text(errors="replace").count("unhandled error")
    conv = world["conversation"]["id"]
    for headers, path in (({"authorization": "Bearer ä-admin"}, "/api/admin/tenants"),
                          ({"authorization": "Bearer ä.ö.ü"}, "/api/v1/converger/tokens/refresh"),
                          ({"x-api-key": "ä"}, f"/api/v1/conversations/{conv}"),
                          ({"x-channel-token": "ä"}, f"/api/v1/conversations/{conv}")):
        status, body, _ = await api.call("GET" if "conversations/" in path else "POST", path,
                                         headers={k: v.encode().decode("latin-1") for k, v in headers.items()})
        assert status == 401, (headers, path, status, body)
    # A forged, non-ASCII session cookie and CSRF token on the pages.
    cookie = "ä.ö".encode().decode("latin-1")
    status, _, _ = await api.call("GET", "/portal/users",
                                  headers={"cookie": f"_converger_portal={cookie}"})
    assert status == 200  # redirected to the login page
    status, _, _ = await api.call("POST", "/portal/login", data={"_csrf": "ä", "email": "x"},
                                  headers={"cookie": f"_converger_portal={cookie}"})
    assert status in (400, 403)
    assert server.log_path.read_text(errors="replace").count("unhandled error") == errors_before
