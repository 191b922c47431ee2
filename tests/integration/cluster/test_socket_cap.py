"""``CONVERGER_MAX_SOCKETS_PER_TOKEN`` holds for the whole gateway: with two worker processes a
token's sockets over the cap are refused whichever process the connection lands on, and a
closed socket frees its place for a connection to any process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.integration.realtime.conftest import user_token
from tests.support.api import Api
from tests.support.server import Server

from .conftest import cluster_env

CAP = 4


async def _connect(s: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse | int:
    """The socket, or the worker pid that refused it with 429 ``too_many_sockets``."""
    try:
        return await s.ws_connect(url)
    except aiohttp.WSServerHandshakeError as e:
        assert e.status == 429, e
        assert e.headers is not None
        return int(e.headers["x-converger-worker"])


async def test_a_tokens_socket_cap_holds_across_two_worker_processes(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", env=cluster_env(
        CONVERGER_WORKERS="2", CONVERGER_MAX_SOCKETS_PER_TOKEN=str(CAP))).start(timeout=60)
    held: list[aiohttp.ClientWebSocketResponse] = []
    try:
        # A fresh connection per request: successive handshakes land on either process.
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0)) as s:
            w = await Api(s, srv.url).setup(name="sockcap")
            token = await user_token(Api(s, srv.url), w["channel_token"], w["conversation"]["id"])
            url = f"{srv.ws_url}/socket/websocket?token={token}&vsn=2.0.0"
            refused_by: set[int] = set()
            deadline = time.monotonic() + 60
            # Keep connecting until both processes have refused one: each then knows of
            # sockets held by the other (a per-process count would have let 2 × CAP in).
            while len(refused_by) < 2:
                assert time.monotonic() < deadline, (len(held), refused_by)
                got = await _connect(s, url)
                if isinstance(got, int):
                    refused_by.add(got)
                else:
                    held.append(got)
                    assert len(held) <= CAP, f"{len(held)} sockets open for a cap of {CAP}"
            assert len(held) == CAP
            assert len({w["pid"] for w in srv.workers()}) == 2

            # One closed: the next connection is accepted, wherever it lands; then full again.
            await held.pop().close()
            while True:
                got = await _connect(s, url)
                if not isinstance(got, int):
                    held.append(got)
                    break
                assert time.monotonic() < deadline, "a closed socket's place was not freed"
                await asyncio.sleep(0.05)
            for _ in range(6):
                got = await _connect(s, url)
                if not isinstance(got, int):
                    held.append(got)
                assert isinstance(got, int), f"{len(held)} sockets open for a cap of {CAP}"
            # The sockets that are in still work.
            await held[0].send_str('["1","1","phoenix","heartbeat",{}]')
            reply = await held[0].receive_json(timeout=10)
            assert reply[3] == "phx_reply" and reply[4]["status"] == "ok", reply
    finally:
        for ws in held:
            await ws.close()
        srv.stop(timeout=40)
    assert "Traceback" not in srv.log()
