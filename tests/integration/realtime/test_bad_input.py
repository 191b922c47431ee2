"""Bad input on a socket closes it (or answers an error) with a reason; the server and the
other sockets keep working."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.rawwire import TEXT, RawSocket
from tests.support.server import Server

from .phx import Phx

PATH = "/socket/websocket"
WS_MAX_FRAME_BYTES = 1_048_576  # CONVERGER_WS_MAX_FRAME_BYTES, its default


async def _closed(phx: Phx, timeout: float = 15.0) -> tuple[int | None, str]:
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "the socket was never closed"
        msg = await phx.ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return phx.ws.close_code, str(msg.extra or "")
        assert msg.type == aiohttp.WSMsgType.TEXT


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json at all", 1007),
        ('{"topic": "phoenix"}', 1007),
        ('[null, "1", "phoenix"]', 1007),
        ('[null, "1", 42, "heartbeat", {}]', 1007),
        ('[null, {"x": 1}, "phoenix", "heartbeat", {}]', 1007),
        (b"\x00\x01binary", 1003),
    ],
)
async def test_malformed_frames_close_with_a_reason(
    server: Server, session: aiohttp.ClientSession, api: Api, world: dict[str, Any],
    frame: str | bytes, code: int,
) -> None:
    bystander = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    await bystander.join(f"conversation:{world['conv_id']}")
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    if isinstance(frame, bytes):
        await phx.ws.send_bytes(frame)
    else:
        await phx.ws.send_str(frame)
    got_code, reason = await _closed(phx)
    assert got_code == code
    assert reason
    # Everyone else is unaffected.
    await api.post_activity(world["conv_id"], world["api_key"], text="still here")
    f = await bystander.expect(lambda f: f.event == "new_activity")
    assert f.payload["text"] == "still here"
    ref = await bystander.send("phoenix", "heartbeat", {})
    assert (await bystander.reply(ref)).payload["status"] == "ok"
    await bystander.close()


async def test_oversize_frame_closes_1009(
    server: Server, session: aiohttp.ClientSession, world: dict[str, Any]
) -> None:
    # Only the header of a text frame one byte over the limit: the server decides from it, and
    # with nothing more in flight its close frame is always read (tests.support.rawwire.py).
    raw = await RawSocket.open(f"{server.ws_url}{PATH}?"
                               + urlencode({"token": world["user_token"], "vsn": "2.0.0"}))
    await raw.send_header(TEXT, WS_MAX_FRAME_BYTES + 1)
    code, _ = await raw.closed()
    await raw.close()
    assert code == 1009
    ok = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    ref = await ok.send("phoenix", "heartbeat", {})
    assert (await ok.reply(ref)).payload["status"] == "ok"
    await ok.close()


async def test_unknown_phoenix_event_and_bad_join_payload(
    server: Server, session: aiohttp.ClientSession, world: dict[str, Any]
) -> None:
    phx = await Phx.connect(session, server.ws_url, PATH, world["user_token"])
    r = await phx.push("phoenix", "nonsense", {})
    assert r.payload == {"status": "error", "response": {"reason": "unknown event"}}
    r = await phx.push(f"conversation:{world['conv_id']}", "phx_join", "not an object")
    assert r.payload == {"status": "error", "response": {"reason": "invalid payload"}}
    await phx.close()


async def test_idle_socket_is_closed_and_heartbeats_keep_it_open(
    tmp_path: Any, session: aiohttp.ClientSession
) -> None:
    import asyncio
    import time

    from tests.support.api import Api as _Api

    from .conftest import make_world

    srv = Server(tmp_path / "idle", env={"CONVERGER_WS_IDLE_TIMEOUT": "1"}).start()
    try:
        api = _Api(session, srv.url)
        w = await make_world(api)
        idle = await Phx.connect(session, srv.ws_url, PATH, w["user_token"])
        alive = await Phx.connect(session, srv.ws_url, PATH, w["user_token"])
        started = time.monotonic()
        closing = asyncio.ensure_future(_closed(idle))
        beats = 0
        # Meanwhile the other socket sends a heartbeat every 0.3 s (the client's own timer).
        while not closing.done() or beats < 6:
            ref = await alive.send("phoenix", "heartbeat", {})
            assert (await alive.reply(ref)).payload["status"] == "ok"
            beats += 1
            await asyncio.wait({closing}, timeout=0.3)
        code, reason = closing.result()
        assert code == 1000 and "heartbeat" in reason
        assert time.monotonic() - started < 4
        assert not alive.ws.closed
        await alive.close()
    finally:
        srv.stop()
