"""The converger-client npm package (clients/js/): ``npm pack`` builds it from the very file the
gateway serves, it installs from the tarball into a scratch project (no network: it has no
dependencies), ships its TypeScript declarations, and works there under node against the real
server — receives a pushed activity with onActivity and a delivery_status tick, sends a message
and a typing indicator; tsc --strict compiles a project against its declarations and refuses
misuses of them."""

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


# tsc from tests/e2e/node (tests/setup.sh installs it): the declarations type-check as a
# TypeScript user would compile against them, strictly.
TSC = ROOT / "tests" / "e2e" / "node" / "node_modules" / ".bin" / "tsc"
TSC_FLAGS = ["--noEmit", "--strict", "--module", "commonjs", "--moduleResolution", "node",
             "--target", "es2020", "--lib", "es2020,dom"]

# Every part of the API, used as its declarations say.
TYPED_USE = """
import ConvergerClient = require("converger-client");

const client = new ConvergerClient("wss://chat.example.com/socket/converger",
                                   { mode: "converger", heartbeatMs: 30000 });
const version: string = ConvergerClient.VERSION;
client
  .onActivity((a: ConvergerClient.Activity) => { const id: string = a.id; void id; })
  .onStatus((s: ConvergerClient.Status) => { if (s === "reconnecting") { void s; } })
  .onDeliveryStatus((d) => {
    const tick: "pending" | "sent" | "delivered" | "read" | "failed" | "skipped" = d.status;
    const ids: [string, string] = [d.delivery_id, d.activity_id];
    void tick; void ids;
  })
  .onAttachmentStatus((s) => {
    const state: "pending" | "stored" | "failed" = s.status;
    const url: string | undefined = s.attachment.contentUrl;
    const why: string | null = s.error;
    const where: [string, number, number] = [s.activity_id, s.index, s.attempts];
    void state; void url; void why; void where;
  })
  .onTyping((a) => { void a.sender; })
  .onReconnect(({ attempt, delayMs }) => { const n: number = attempt + delayMs; void n; });

async function main(file: Blob): Promise<void> {
  await client.connect("token");
  await client.joinConversation("c0ffee00-0000-4000-8000-000000000000");
  await client.sendMessage("hello", { attachments: [{ upload_id: "u1" }] });
  await client.sendTyping();
  await client.sendTemplate("order_update", "en_US", [
    { type: "body", parameters: [{ type: "text", text: "Ada" }] }]);
  const up: ConvergerClient.UploadAnswer = await client.sendAttachment(file, "invoice", "a.pdf");
  const kind: string | undefined = up.attachment.type;
  void kind; void version;
  client.disconnect();
}
void main;
"""

# Misuses the declarations must reject, each on its own line: (line, what tsc says).
MISUSE = """import ConvergerClient = require("converger-client");
const client = new ConvergerClient("/socket", { mode: "phoenix" });
client.onDeliveryStatus((d) => { const n: number = d.status; void n; });
client.onAttachmentStatus((s) => { const url: string = s.attachment.contentUrl; void url; });
void client.sendTemplate(42, "en_US");
void client.sendAttachment("not a blob");
"""
MISUSE_ERRORS = {2: "TS2322", 3: "TS2322", 4: "TS2322", 5: "TS2345", 6: "TS2345"}


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


def _installed(tmp_path: Path) -> Path:
    """A scratch project with the packed converger-client installed (offline: no deps)."""
    pack_dir, project = tmp_path / "pack", tmp_path / "project"
    pack_dir.mkdir()
    project.mkdir()
    _run([NPM, "pack", "--pack-destination", str(pack_dir)], ROOT / "clients" / "js")
    [tarball] = pack_dir.glob("converger-client-*.tgz")
    (project / "package.json").write_text('{"name": "scratch", "private": true}')
    _run([NPM, "install", "--offline", str(tarball)], project)
    return project


def test_typescript_declarations_type_check(tmp_path: Path) -> None:
    """The package's converger.d.ts, compiled against by tsc --strict in the scratch project:
    every method and event payload used as documented compiles; misuses (a wrong mode, a
    status read as a number, a missing contentUrl taken for certain, wrong argument types) are
    each refused on their line."""
    assert TSC.exists(), "tsc is missing: run bash tests/setup.sh (npm install in tests/e2e/node)"
    project = _installed(tmp_path)
    (project / "use.ts").write_text(TYPED_USE)
    done = subprocess.run([NODE, str(TSC), *TSC_FLAGS, "use.ts"], cwd=project,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    (project / "misuse.ts").write_text(MISUSE)
    done = subprocess.run([NODE, str(TSC), *TSC_FLAGS, "misuse.ts"], cwd=project,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    found = {int(line.split("(", 1)[1].split(",", 1)[0]): line.split("error ", 1)[1][:6]
             for line in done.stdout.splitlines() if line.startswith("misuse.ts(")}
    assert found == MISUSE_ERRORS, done.stdout


async def test_npm_package_installs_and_works(
        tmp_path: Path, server: Server, api: Api, receiver: str) -> None:  # noqa: F811
    project = _installed(tmp_path)
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
        assert ready["version"] == "1.2.0"
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
