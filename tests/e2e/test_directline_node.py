"""The official ``botframework-directlinejs`` client (npm, installed by tests/setup.sh) under
node against the real server's Direct Line mount, in WebSocket and polling modes, with the
channel secret and with a token: connect, post, the echo reply, resume after the watermark,
a dropped socket, token refresh, and an expired token (status ``ExpiredToken``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.directline.conftest import DL, bearer, expired_token, make_dl_world
from tests.support.api import Api
from tests.support.server import Server

NODE = shutil.which("node") or "/usr/bin/node"
HERE = Path(__file__).resolve().parent / "node"
Event = dict[str, Any]


class DirectLineNode:
    """One ``directline_client.js`` process: its events, and commands to it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[Event] = []  # events not taken by ``expect`` yet, in order
        self.log: list[Event] = []  # every event, in order

    @classmethod
    async def start(cls, server: Server, mode: str, **opts: str) -> DirectLineNode:
        if not (HERE / "node_modules" / "botframework-directlinejs").exists():
            pytest.fail("botframework-directlinejs is missing: run `bash tests/setup.sh`")
        env = {**os.environ, "DOMAIN": server.url + DL,
               "WEBSOCKET": "1" if mode == "websocket" else "0",
               **{k.upper(): v for k, v in opts.items()}}
        proc = await asyncio.create_subprocess_exec(
            NODE, "--no-warnings", "--experimental-websocket", "directline_client.js", cwd=HERE,
            env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def expect(self, pred: Callable[[Event], bool], timeout: float = 30) -> Event:
        """The first event not looked at yet that matches (later ones stay for later)."""
        assert self.proc.stdout is not None
        try:
            return await asyncio.wait_for(self._expect(pred), timeout)
        except TimeoutError:
            raise AssertionError(f"no such event in {timeout} s; saw {self.log}") from None

    async def _expect(self, pred: Callable[[Event], bool]) -> Event:
        assert self.proc.stdout is not None
        for i, event in enumerate(self.seen):
            if pred(event):
                return self.seen.pop(i)
        deadline = time.monotonic() + 30
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no matching event from the node client; saw {self.log}"
            line = await asyncio.wait_for(self.proc.stdout.readline(), left)
            if not line:
                raise EOFError(f"node client exited; saw {self.log}")
            event = json.loads(line)
            self.log.append(event)
            if pred(event):
                return event
            self.seen.append(event)

    async def status(self, name: str) -> None:
        await self.expect(lambda e: e["event"] == "status" and e["status"] == name)

    async def activity(self, text: str, sender: str) -> Event:
        e = await self.expect(lambda e: e["event"] == "activity"
                              and e["activity"].get("text") == text
                              and e["activity"]["from"]["id"] == sender)
        return e["activity"]  # type: ignore[no-any-return]

    async def send(self, cmd: Event) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def post(self, text: str, sender: str = "u1") -> str:
        await self.send({"cmd": "post", "tag": text, "activity": {
            "type": "message", "text": text, "from": {"id": sender}}})
        e = await self.expect(lambda e: e["event"] in ("posted", "post_error") and e["tag"] == text)
        return str(e.get("id") or e)

    async def state(self) -> Event:
        await self.send({"cmd": "state"})
        return await self.expect(lambda e: e["event"] == "state")

    def activities(self) -> list[tuple[str, str | None]]:
        """(sender, text) of every activity received so far."""
        return [(e["activity"]["from"]["id"], e["activity"].get("text"))
                for e in self.log if e["event"] == "activity"]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def clients() -> AsyncIterator[list[DirectLineNode]]:
    made: list[DirectLineNode] = []
    yield made
    for c in made:
        await c.stop()


async def credential(api: Api, w: dict[str, Any], cred: str) -> dict[str, str]:
    """The client's option: the secret, or a token a site's backend got with it."""
    if cred == "secret":
        return {"secret": w["secret"]}
    gen = await api.ok("POST", f"{DL}/tokens/generate", headers=bearer(w["secret"]))
    return {"token": gen["token"]}


MODES = pytest.mark.parametrize("mode", ["websocket", "polling"])


@MODES
@pytest.mark.parametrize("cred", ["secret", "token"])
async def test_connect_post_echo_and_resume_after_the_watermark(
    server: Server, api: Api, clients: list[DirectLineNode], mode: str, cred: str
) -> None:
    w = await make_dl_world(api)
    opts = await credential(api, w, cred)
    c = await DirectLineNode.start(server, mode, **opts)
    clients.append(c)
    await c.status("Online")
    posted = await c.post("hello")
    mine = await c.activity("hello", "u1")
    assert mine["id"] == posted and mine["from"]["role"] == "user"
    reply = await c.activity("hello", "bot")
    assert reply["from"]["role"] == "bot" and reply["channelId"] == "directline"
    state = await c.state()
    assert state["watermark"] and state["conversationId"]
    await c.stop()
    # While the client is away, the conversation goes on.
    await api.ok("POST", f"{DL}/conversations/{state['conversationId']}/activities",
                 headers=bearer(w["secret"]),
                 json={"type": "message", "text": "while away", "from": {"id": "u2"}})
    resume = {**opts, "conversation_id": state["conversationId"], "watermark": state["watermark"]}
    if cred == "token":
        resume["token"] = state["token"]  # the conversation's token the client was using
    again = await DirectLineNode.start(server, mode, **resume)
    clients.append(again)
    await again.status("Online")
    await again.activity("while away", "bot")
    await again.post("after")
    await again.activity("after", "bot")
    assert again.activities() == [("u2", "while away"), ("bot", "while away"),
                                  ("u1", "after"), ("bot", "after")]


async def test_a_dropped_socket_reconnects_after_the_watermark_and_misses_nothing(
    fresh_server: Server, session: aiohttp.ClientSession, clients: list[DirectLineNode]
) -> None:
    # The server closes a socket silent for 1 s; the client pings every 20 s, so it is
    # dropped right after each connect and reconnects (GET conversations/<id>?watermark=…).
    fresh_server.extra_env["CONVERGER_WS_IDLE_TIMEOUT"] = "1"
    srv = fresh_server.start()
    api = Api(session, srv.url)
    w = await make_dl_world(api)
    c = await DirectLineNode.start(srv, "websocket", **await credential(api, w, "token"))
    clients.append(c)
    await c.status("Online")
    await c.post("one")
    await c.activity("one", "bot")
    conv_id = (await c.state())["conversationId"]
    for n in range(2):
        await c.expect(lambda e: e["event"] == "ws_close")
        # Posted while the client has no socket: it must arrive once, after the reconnect.
        await api.ok("POST", f"{DL}/conversations/{conv_id}/activities",
                     headers=bearer(w["secret"]),
                     json={"type": "message", "text": f"gap {n}", "from": {"id": "u2"}})
        get = await c.expect(lambda e: e["event"] == "http" and e["method"] == "GET"
                             and "/activities" not in e["url"])
        assert "watermark=" in get["url"] and not get["url"].endswith("watermark=")
        assert get["status"] == 200
        await c.activity(f"gap {n}", "bot")
    assert c.activities() == [("u1", "one"), ("bot", "one"), ("u2", "gap 0"), ("bot", "gap 0"),
                              ("u2", "gap 1"), ("bot", "gap 1")]


@MODES
async def test_token_refresh(server: Server, api: Api, clients: list[DirectLineNode],
                             mode: str) -> None:
    w = await make_dl_world(api)
    c = await DirectLineNode.start(server, mode, refresh_ms="300",
                                   **await credential(api, w, "token"))
    clients.append(c)
    await c.status("Online")
    before = (await c.state())["token"]
    for _ in range(2):
        r = await c.expect(lambda e: e["event"] == "http" and e["url"].endswith("/tokens/refresh"))
        assert r["status"] == 200
    after = (await c.state())["token"]
    assert after != before
    await c.post("with a refreshed token")
    await c.activity("with a refreshed token", "bot")


@MODES
async def test_an_expired_token_sets_expired_token_and_a_new_one_recovers(
    server: Server, api: Api, clients: list[DirectLineNode], mode: str
) -> None:
    w = await make_dl_world(api)
    c = await DirectLineNode.start(server, mode, **await credential(api, w, "token"))
    clients.append(c)
    await c.status("Online")
    await c.post("fresh")
    await c.activity("fresh", "bot")
    conv_id = (await c.state())["conversationId"]
    # The site hands the client a token that has expired (signed an hour and more ago).
    await c.send({"cmd": "reconnect", "token": expired_token(w, conv_id)})
    if mode == "websocket":  # the open socket still works; the next REST call finds out
        await c.send({"cmd": "post", "tag": "late", "activity": {
            "type": "message", "text": "late", "from": {"id": "u1"}}})
    await c.status("ExpiredToken")
    forbidden = await c.expect(lambda e: e["event"] == "http" and e["status"] == 403)
    assert "/conversations/" in forbidden["url"]
    # The site gets a fresh token for the conversation and hands it over: Online again.
    fresh = await api.ok("GET", f"{DL}/conversations/{conv_id}", headers=bearer(w["secret"]))
    await c.send({"cmd": "reconnect", "token": fresh["token"]})
    await c.status("Online")
    posted = await c.post("recovered")
    assert len(posted) == 36  # an activity id, not "retry"
    if mode == "websocket":  # the polling client stops polling after a 403 (its own choice)
        await c.activity("recovered", "bot")
