"""Regression tests for the 500s that probing beyond the schema found (issue 9):

* bytes that are not UTF-8 in header values (an ``UnicodeEncodeError`` hashing the API key or
  storing the idempotency key), and non-ASCII session cookies and CSRF tokens (a ``TypeError``
  from ``hmac.compare_digest`` on non-ASCII ``str``); raw sockets send the exact bytes;
* JSON nested past the parser's recursion limit (a ``RecursionError``) in every JSON body,
  an upload's ``activity`` part and a socket frame.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
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


DEEP = b"[" * 50_000  # past the JSON parser's recursion limit: a RecursionError, a 500 before


async def test_json_nested_past_the_parser_limit_is_a_400(api: Api, world: dict[str, Any],
                                                          server: Server) -> None:
    conv = world["conversation"]["id"]
    inner = b'{"metadata": {"a": ' + DEEP + b"}}"
    hook = await api.channel(world["tenant"]["id"], name="deep", type="webhook", mode="duplex",
                             config={"url": "http://127.0.0.1:9/x", "allow_unsigned": True})
    for path, headers in ((f"/api/v1/conversations/{conv}/activities", {"x-api-key": world["api_key"]}),
                          (f"/api/v1/channels/{hook['id']}/inbound", {}),
                          (f"/api/v1/channels/{hook['id']}/status", {}),
                          ("/api/admin/tenants", api.admin)):
        for body in (DEEP, inner):
            status, answer, _ = await api.call("POST", path, data=body,
                                               headers={**headers, "content-type": "application/json"})
            assert (status, answer["code"]) == (400, "json_too_deep"), (path, status, answer)


async def test_upload_activity_nested_too_deep_is_a_400(api: Api) -> None:
    t = await api.tenant("deep-upload")
    c = await api.channel(t["id"], type="websocket")
    conv = await api.ok("POST", "/api/v1/converger/conversations", 201,
                        headers={"authorization": "Bearer " + (await api.ok(
                            "POST", "/api/v1/converger/tokens/generate",
                            headers={"authorization": f"Bearer {c['secret']}"}))["token"]})
    for activity in ('{"metadata": {"a": ' + "[" * 50_000 + "}}",  # past the parser's limit
                     '{"metadata": {"a": ' + "[" * 40 + "]" * 40 + "}}"):  # past the API's 32
        form = aiohttp.FormData()
        form.add_field("file", b"x", filename="a.txt", content_type="text/plain")
        form.add_field("activity", activity)
        status, answer, _ = await api.call(
            "POST", f"/api/v1/converger/conversations/{conv['conversationId']}/upload", data=form,
            headers={"authorization": f"Bearer {conv['token']}"})
        assert (status, answer["code"]) == (400, "json_too_deep"), answer


async def test_socket_frame_nested_too_deep_closes_that_socket_only(
        api: Api, server: Server, session: aiohttp.ClientSession) -> None:
    t = await api.tenant("deep-socket")
    c = await api.channel(t["id"], type="websocket")
    gen = await api.ok("POST", "/api/v1/converger/tokens/generate",
                       headers={"authorization": f"Bearer {c['secret']}"})
    url = f"{server.ws_url}/socket/converger/websocket?vsn=2.0.0&token={gen['token']}"
    async with session.ws_connect(url) as ws:
        await ws.send_str("[" * 50_000)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1007, msg
    async with session.ws_connect(url) as ws:  # the gateway still serves
        await ws.send_str('[null, "1", "phoenix", "heartbeat", {}]')
        assert "ok" in (await ws.receive(timeout=5)).data


async def test_admin_page_middleware_steps_nested_too_deep(tmp_path: Any) -> None:
    """The admin Channels form once parsed the middleware steps as JSON: "[[[[…" was a 500."""
    from tests.integration.web.conftest import Client, create_admin

    create_admin(tmp_path, "deep@example.com", "deep admin password")
    with Server(tmp_path) as srv:
        admin = Client(srv.url)
        try:
            assert await admin.login("deep@example.com", "deep admin password") == 302
            async with aiohttp.ClientSession() as s:
                tenant = await Api(s, srv.url).tenant("deep-page")
            await admin.get("/admin/channels")
            # Middleware steps are a form now: a metadata value nested past the parser's
            # limit is kept as the text typed, never a 500.
            status, body, _ = await admin.post("/admin/channels", {
                "tenant_id": tenant["id"], "name": "x", "type": "webhook",
                "config.webhook.url": "http://127.0.0.1:9/x", "steps.0.type": "set_metadata",
                "steps.0.values": "deep=" + "[" * 50_000})
            assert status == 201, status
        finally:
            await admin.close()
        assert "unhandled error" not in srv.log_path.read_text(errors="replace")


async def test_socket_activity_nested_deeper_than_the_api_allows(
        api: Api, server: Server, session: aiohttp.ClientSession) -> None:
    """The REST API refuses JSON nested deeper than 32 levels; a ``new_activity`` pushed on the
    legacy socket took 900 levels into the store (and on to every delivery). Same limit now."""
    import json

    w = await api.setup("deep-push")
    conv = w["conversation"]["id"]
    token = (await api.ok("POST", "/api/v1/tokens", 201, headers={"x-channel-token": w["channel_token"]},
                          json={"conversation_id": conv, "user_id": "u"}))["token"]
    async with session.ws_connect(f"{server.ws_url}/socket/websocket?vsn=2.0.0&token={token}") as ws:
        topic = f"conversation:{conv}"
        await ws.send_str(json.dumps(["1", "1", topic, "phx_join", {}]))
        assert '"ok"' in (await ws.receive(timeout=5)).data
        deep = "[" * 40 + "]" * 40
        await ws.send_str(f'["1", "2", "{topic}", "new_activity", {{"text": "d", "metadata": {{"a": {deep}}}}}]')
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply[3] == "phx_reply" and reply[4]["status"] == "error", reply
        assert reply[4]["response"]["reason"] == "invalid_activity"
    items = (await api.ok("GET", f"/api/v1/conversations/{conv}/activities",
                          headers={"x-api-key": w["api_key"]}))["data"]
    assert all(a["text"] != "d" for a in items)


async def test_cors_preflight_logs_no_error(api: Api, server: Server) -> None:
    """A preflight with ``Content-Length: 0`` (as some clients and proxies send it) logged a
    Sanic error, "body not consumed" — noise that pages an operator who alerts on errors."""
    before = server.log_path.read_text(errors="replace").count("body not consumed")
    for origin in ("https://app.example", "https://other.example"):
        status, _, _ = await api.call("OPTIONS", "/api/v1/routing_rules", data=b"", headers={
            "origin": origin, "access-control-request-method": "POST", "content-length": "0"})
        assert status == 204
    await api.ok("GET", "/livez")  # a request after them, so their log lines are written
    assert server.log_path.read_text(errors="replace").count("body not consumed") == before


async def test_unparsable_form_bodies_are_a_400_and_no_error_log(api: Api, server: Server) -> None:
    """A multipart body without a boundary and a login form that is not UTF-8: Sanic fails to
    parse them and logged an ERROR with a traceback each time; the client gets a 400, the log
    one INFO line."""
    t = await api.tenant("bad-form")
    c = await api.channel(t["id"], type="websocket")
    token = (await api.ok("POST", "/api/v1/converger/tokens/generate",
                          headers={"authorization": f"Bearer {c['secret']}"}))["token"]
    conv = await api.ok("POST", "/api/v1/converger/conversations", 201,
                        headers={"authorization": f"Bearer {token}"})
    log_before = server.log_path.read_text(errors="replace")
    status, answer, _ = await api.call(
        "POST", f"/api/v1/converger/conversations/{conv['conversationId']}/upload",
        data=b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--x--\r\n",
        headers={"authorization": f"Bearer {conv['token']}", "content-type": "multipart/form-data"})
    assert status == 400 and answer["code"] == "missing_file", answer
    status, _, _ = await api.call("POST", "/admin/login", data=b"email=\xff\xfe&password=\xff",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert 400 <= status < 500
    await api.ok("GET", "/livez")  # a request after them, so their log lines are written
    new = server.log_path.read_text(errors="replace")[len(log_before):]
    assert "Failed when parsing form" not in new and "Traceback" not in new, new
    assert new.count("malformed form body from a client") == 2, new
