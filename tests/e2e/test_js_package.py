"""The converger-client npm package (clients/js/): ``npm pack`` builds it from the very file the
gateway serves, it installs from the tarball into a scratch project (no network: it has no
dependencies), ships its TypeScript declarations, and works there under node against the real
server — receives a pushed activity with onActivity and a delivery_status tick, sends a message
and a typing indicator."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.test_browser_rich import receiver  # noqa: F401 (a loopback webhook receiver)
from tests.integration.realtime.conftest import user_token
from tests.support.api import Api
from tests.support.server import ROOT, Server

NODE = shutil.which("node") or "/usr/bin/node"
NPM = shutil.which("npm") or "/usr/bin/npm"

SCRIPT = r"""
const ConvergerClient = require("converger-client");
const client = new ConvergerClient(process.env.SOCKET_URL);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
client.onActivity((a) => out({ event: "activity", activity: a }));
client.onDeliveryStatus((d) => out({ event: "delivery", status: d.status, activity_id: d.activity_id }));
client.onStatus((s) => out({ event: "status", status: s }));
(async () => {
  await client.connect(process.env.TOKEN);
  await client.joinConversation(process.env.CONVERSATION);
  out({ event: "ready", version: ConvergerClient.VERSION });
  for await (const line of require("readline").createInterface({ input: process.stdin })) {
    if (line === "send") { const r = await client.sendMessage("from npm"); out({ event: "sent", reply: r }); }
    if (line === "typing") { await client.sendTyping(); out({ event: "typed" }); }
    if (line === "quit") { client.disconnect(); process.exit(0); }
  }
})().catch((e) => { out({ event: "error", message: String(e) }); process.exit(1); });
"""


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, f"{cmd}: {done.stderr}"
    return done.stdout


async def _expect(proc: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert line, f"node ended before {event!r}"
        msg = json.loads(line)
        assert msg["event"] != "error", msg
        if msg["event"] == event:
            return dict(msg)


async def test_npm_package_installs_and_works(
        tmp_path: Path, server: Server, api: Api, receiver: str) -> None:  # noqa: F811
    pack_dir, project = tmp_path / "pack", tmp_path / "project"
    pack_dir.mkdir()
    project.mkdir()
    _run([NPM, "pack", "--pack-destination", str(pack_dir)], ROOT / "clients" / "js")
    [tarball] = pack_dir.glob("converger-client-*.tgz")
    (project / "package.json").write_text('{"name": "scratch", "private": true}')
    _run([NPM, "install", "--offline", str(tarball)], project)
    installed = project / "node_modules" / "converger-client"
    served = (ROOT / "gateway" / "static" / "converger.js").read_bytes()
    assert (installed / "converger.js").read_bytes() == served
    async with api.session.get(server.url + "/static/converger.js") as r:
        assert await r.read() == served  # the binary's file and the package's are one
    assert "onDeliveryStatus" in (installed / "converger.d.ts").read_text()
    assert json.loads((installed / "package.json").read_text())["types"] == "converger.d.ts"

    w = await api.setup(name="npm-js", type="webhook", config={"url": receiver})
    cid, key = w["conversation"]["id"], w["api_key"]
    token = await user_token(api, w["channel_token"], cid)
    (project / "run.js").write_text(SCRIPT)
    proc = await asyncio.create_subprocess_exec(
        NODE, "--no-warnings", "--experimental-websocket", "run.js", cwd=project,
        env={**os.environ, "SOCKET_URL": server.url.replace("http", "ws") + "/socket",
             "TOKEN": token, "CONVERSATION": cid},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None
    try:
        ready = await _expect(proc, "ready")
        assert ready["version"] == "1.1.0"
        pushed = await api.post_activity(cid, key, text="to npm", sender="agent")
        got = await _expect(proc, "activity")
        assert got["activity"]["id"] == pushed["id"] and got["activity"]["text"] == "to npm"
        proc.stdin.write(b"send\n")
        await _expect(proc, "sent")
        tick = await _expect(proc, "delivery")
        assert tick["status"] in ("sent", "delivered")
        proc.stdin.write(b"typing\n")
        await _expect(proc, "typed")
        listed = await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                              headers={"x-api-key": key})
        assert [(a["type"], a["text"]) for a in listed["data"]][:2] == [
            ("message", "to npm"), ("message", "from npm")]
        proc.stdin.write(b"quit\n")
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
