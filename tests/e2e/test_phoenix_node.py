"""The official ``phoenix`` npm client, under node, against the real server: connect, join,
receive a pushed activity, push one (installed by tests/setup.sh into tests/e2e/node)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.realtime.conftest import bearer, make_cg_world, make_world
from tests.support.api import Api
from tests.support.server import Server

NODE = shutil.which("node") or "/usr/bin/node"
HERE = Path(__file__).resolve().parent / "node"

# Node.js is part of the test setup (tests/setup.sh installs the client with npm): a missing
# node is a failure, not a skip.


class NodeClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.inbox: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, socket_url: str, token: str, topic: str, join: Any = None) -> NodeClient:
        if not (HERE / "node_modules" / "phoenix").exists():
            pytest.fail("the phoenix npm package is missing: run `bash tests/setup.sh`")
        env = {**os.environ, "SOCKET_URL": socket_url, "TOKEN": token, "TOPIC": topic,
               "JOIN_PARAMS": json.dumps(join or {})}
        proc = await asyncio.create_subprocess_exec(
            NODE, "--no-warnings", "--experimental-websocket", "phoenix_client.js", cwd=HERE,
            env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def expect(self, event: str, timeout: float = 10) -> dict[str, Any]:
        """The next line with ``event`` (earlier lines of other events are kept for later)."""
        assert self.proc.stdout is not None
        for i, msg in enumerate(self.inbox):
            if msg["event"] == event:
                return self.inbox.pop(i)
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise EOFError("node client exited")
            msg = json.loads(line)
            if msg["event"] == event:
                return msg
            self.inbox.append(msg)

    async def command(self, cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def test_official_phoenix_client_on_the_legacy_socket(server: Server, api: Api) -> None:
    w = await make_world(api)
    client = await NodeClient.start(f"{server.ws_url}/socket", w["user_token"],
                                    f"conversation:{w['conv_id']}")
    try:
        assert (await client.expect("joined"))["resp"] == {}
        a = await api.post_activity(w["conv_id"], w["api_key"], text="to node", sender="server")
        got = await client.expect("new_activity")
        assert got["payload"]["id"] == a["id"] and got["payload"]["text"] == "to node"
        await client.command({"push": "new_activity",
                              "payload": {"text": "from node", "idempotency_key": "n1"}})
        reply = await client.expect("reply")
        assert reply["status"] == "ok"
        echoed = await client.expect("new_activity")
        assert echoed["payload"]["text"] == "from node"
        listed = await api.ok("GET", f"/api/v1/conversations/{w['conv_id']}/activities",
                              headers={"x-api-key": w["api_key"]})
        assert [x["text"] for x in listed["data"]] == ["to node", "from node"]
    finally:
        await client.stop()


async def test_official_phoenix_client_on_the_converger_socket(server: Server, api: Api) -> None:
    cg = await make_cg_world(api)
    path = f"/api/v1/converger/conversations/{cg['conv_id']}/activities"
    first = await api.ok("POST", path, json={"text": "before"}, headers=bearer(cg["conv_token"]))
    wm = (await api.ok("GET", path, headers=bearer(cg["conv_token"])))["watermark"]
    await api.ok("POST", path, json={"text": "missed"}, headers=bearer(cg["conv_token"]))
    client = await NodeClient.start(f"{server.ws_url}/socket/converger", cg["conv_token"],
                                    f"converger:conversation:{cg['conv_id']}", {"watermark": wm})
    try:
        await client.expect("joined")
        replay = await client.expect("activitySet")
        assert [a["text"] for a in replay["payload"]["activities"]] == ["missed"]
        await api.ok("POST", path, json={"text": "live", "from": {"id": "bot"}},
                     headers=bearer(cg["conv_token"]))
        live = await client.expect("activitySet")
        (a,) = live["payload"]["activities"]
        assert a["text"] == "live" and a["from"] == {"id": "bot"} and a["id"] != first["id"]
    finally:
        await client.stop()
