"""The hub: live pushes follow commit (``seq``) order under concurrent posters, and a socket
that stops reading is dropped without slowing the others."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from typing import Any

import aiohttp

from tests.support.api import Api
from tests.support.server import Server

from .conftest import make_world
from .phx import Phx

PATH = "/socket/websocket"


async def test_live_order_is_seq_order_under_10_concurrent_posters(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any]
) -> None:
    cid, key = world["conv_id"], world["api_key"]
    topic = f"conversation:{cid}"
    sockets = [await Phx.connect(session, server.ws_url, PATH, world["user_token"], vsn=v)
               for v in ("2.0.0", "1.0.0", "2.0.0")]
    for s in sockets:
        await s.join(topic)

    async def poster(p: int) -> None:
        for i in range(20):
            await api.post_activity(cid, key, text=f"p{p}-{i}")

    await asyncio.gather(*(poster(p) for p in range(10)))
    for s in sockets:
        got = await s.events("new_activity", 200, timeout=20)
        assert [f.payload["seq"] for f in got] == list(range(1, 201))
        assert await s.quiet("new_activity", 0.2)
    listed = await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                          headers={"x-api-key": key})
    assert [a["id"] for a in listed["data"]] == [f.payload["id"] for f in got]
    for s in sockets:
        await s.close()


async def _stalled_socket(port: int, token: str) -> socket.socket:
    """A client that completes the handshake and then never reads (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {PATH}?token={token}&vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, req.encode())
    head = b""
    async with asyncio.timeout(10):  # a server that never answers fails the test, not hangs it
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(sock, 1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return sock


def _masked_text(text: str) -> bytes:
    data = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data)]) + mask + body


async def test_a_stalled_socket_is_dropped_and_does_not_slow_50_others(
    tmp_path: Any, session: aiohttp.ClientSession
) -> None:
    srv = Server(tmp_path / "slow", env={"CONVERGER_WS_SEND_QUEUE": "8"}).start()
    try:
        api = Api(session, srv.url)
        w = await make_world(api)
        topic = f"conversation:{w['conv_id']}"
        stalled = await _stalled_socket(srv.port, w["user_token"])
        loop = asyncio.get_running_loop()
        join = f'["1","1","{topic}","phx_join",{{}}]'
        await loop.sock_sendall(stalled, _masked_text(join))
        readers = [await Phx.connect(session, srv.ws_url, PATH, w["user_token"]) for _ in range(50)]
        for r in readers:
            await r.join(topic)
        # Wait until the hub has all 51 subscribers (the stalled join is processed).
        probe = await api.post_activity(w["conv_id"], w["api_key"], text="probe")
        for r in readers:
            await r.expect(lambda f: f.event == "new_activity" and f.payload["id"] == probe["id"])
        n, pad = 100, "x" * 60_000
        sent_at: dict[int, float] = {}
        lags: list[float] = []

        async def drain(r: Phx) -> None:
            got = await r.events("new_activity", n, timeout=30)
            lags.append(time.monotonic() - sent_at[n - 1])
            assert [int(f.payload["text"].split(":")[0]) for f in got] == list(range(n))

        draining = asyncio.gather(*(drain(r) for r in readers))
        for i in range(n):
            sent_at[i] = time.monotonic()
            await api.post_activity(w["conv_id"], w["api_key"], text=f"{i}:{pad}")
        await draining
        # Every reader got everything while the stalled socket was still not reading: had the
        # hub waited on it, they would have stalled too (until its ping timeout, 40 s).
        assert max(lags) < 15, lags
        # The stalled socket was dropped: reading it now ends in a close, not all 40 pushes.
        stalled.setblocking(True)
        stalled.settimeout(10)
        received = b""
        while True:
            chunk = stalled.recv(1 << 20)
            if not chunk:
                break
            received += chunk
        assert received.count(b'"new_activity"') < n
        stalled.close()
        for r in readers:
            await r.close()
    finally:
        srv.stop()
