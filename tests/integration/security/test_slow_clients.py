"""Hole 2 (issue 13): one IP must not make the gateway unreachable. 5,000 slow partial requests
from one loopback address (127.0.0.2, one header line a second) against a server whose file
limit (4,096) is below that: ``/livez`` from another address keeps answering, the excess is
refused at once, and the admitted ones are cut at the header deadline however steadily they
trickle. Per-token WebSocket caps are tested here too."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.api import Api
from tests.support.postgres import store_independent
from tests.support.server import Server

pytestmark = store_independent("connection limits and header deadlines, enforced before any route runs")

SLOW = 5000
SLOW_IP = "127.0.0.2"  # all of 127.0.0.0/8 is loopback


def _raise_own_file_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


async def test_livez_answers_while_5000_slow_connections_from_one_ip_are_open(
        tmp_path: Path) -> None:
    _raise_own_file_limit(SLOW + 1024)
    srv = Server(tmp_path / "data", env={"CONVERGER_MAX_CONNECTIONS_PER_IP": "256",
                                         "CONVERGER_HEADER_TIMEOUT": "4"})
    srv.nofile = 4096  # fewer files than the attack has connections
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    stop = asyncio.Event()
    try:
        srv.start()  # inside: a failed start-up is stopped too
        async def open_one() -> None:
            with contextlib.suppress(OSError):
                r, w = await asyncio.open_connection("127.0.0.1", srv.port,
                                                     local_addr=(SLOW_IP, 0))
                w.write(b"GET /livez HTTP/1.1\r\nhost: x\r\n")  # never finished
                writers.append(w)
                readers.append(r)

        for start in range(0, SLOW, 500):
            await asyncio.gather(*(open_one() for _ in range(start, min(SLOW, start + 500))))
        assert len(writers) >= SLOW - 50  # the kernel took them (backlog or accepted)

        async def trickle() -> None:
            n = 0
            while not stop.is_set():
                for w in writers:
                    if not w.is_closing():
                        with contextlib.suppress(OSError, RuntimeError):
                            w.write(b"x-slow-%d: 1\r\n" % n)
                n += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await stop.wait()

        trickler = asyncio.create_task(trickle())
        # While they are all open and trickling, /livez from another address answers.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            for _ in range(3):
                async with s.get(srv.url + "/livez") as r:
                    assert r.status == 200
        # The excess was refused at once (503), the admitted ones get 408 at the deadline even
        # though they keep sending: every slow connection ends within the deadline plus slack.
        answers: dict[str, int] = {}

        async def outcome(r: asyncio.StreamReader) -> None:
            try:
                async with asyncio.timeout(30):
                    line = await r.readline()
            except TimeoutError:
                line = b"open"
            except OSError:  # refused and closed while the client was still sending
                line = b"reset"
            key = line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else line.decode()
            answers[key] = answers.get(key, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(outcome(r) for r in readers))
        assert "open" not in answers, answers
        # (Refused ones may read the 503 or, having kept sending, a reset. A few more than 256
        # get a 408: the kernel's backlog hands over more once the first ones are cut.)
        assert answers.get("503", 0) + answers.get("reset", 0) >= SLOW // 2, answers
        assert 0 < answers.get("408", 0) < SLOW // 2, answers
        assert time.monotonic() - began < 30
        stop.set()
        await trickler
    finally:
        stop.set()
        for w in writers:
            w.close()
        srv.stop()
    assert "Traceback" not in srv.log()


async def test_sockets_per_token_are_capped(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", env={"CONVERGER_MAX_SOCKETS_PER_TOKEN": "3"})
    try:
        srv.start()
        async with aiohttp.ClientSession() as s:
            api = Api(s, srv.url)
            setup: dict[str, Any] = await api.setup("caps")
            token = (await api.ok("POST", "/api/v1/tokens", 201, json={
                "conversation_id": setup["conversation"]["id"], "user_id": "u1"},
                headers={"x-channel-token": setup["channel_token"]}))["token"]
            url = f"{srv.ws_url}/socket/websocket?token={token}&vsn=2.0.0"
            for _ in range(3):  # failed handshakes hold no place
                async with s.get(url.replace("ws://", "http://"), headers={
                        "connection": "upgrade", "upgrade": "websocket",
                        "sec-websocket-version": "8"}) as r:
                    assert r.status in (400, 426), (r.status, await r.text())
            held = [await s.ws_connect(url) for _ in range(3)]
            try:
                async with s.get(url.replace("ws://", "http://"), headers={
                        "connection": "upgrade", "upgrade": "websocket",
                        "sec-websocket-version": "13",
                        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
                    assert r.status == 429
                    assert (await r.json())["code"] == "too_many_sockets"
                await held.pop().close()
                # One closed: one more is accepted (counted down on close).
                deadline = time.monotonic() + 10
                while True:
                    try:
                        held.append(await s.ws_connect(url))
                        break
                    except aiohttp.WSServerHandshakeError:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.05)
            finally:
                for ws in held:
                    await ws.close()
    finally:
        srv.stop()
