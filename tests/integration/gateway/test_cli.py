"""The ``converger`` CLI as a subprocess against a temporary data directory: what it prints
works against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

from tests.support import postgres
from tests.support.api import Api
from tests.support.server import ROOT, Server, database_env, free_port

from .checks import key, tok

SECRET = "test-secret-key-0123456789"  # the same key tests.support.server gives the server


def cli(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVERGER_SECRET_KEY": SECRET, "PYTHONUNBUFFERED": "1",
           **database_env(data_dir)}
    env.pop("CONVERGER_ADMIN_TOKEN", None)
    proc = subprocess.run([sys.executable, "-m", "gateway", *args, "--data-dir", str(data_dir)]
                          if args[0] not in ("version", "settings") else
                          [sys.executable, "-m", "gateway", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def test_version() -> None:
    out = cli("version", data_dir=Path(".")).stdout
    assert out.startswith("converger ")
    for word in ("python ", "sanic ", "sqlite "):
        assert word in out


def test_migrate(tmp_path: Path) -> None:
    if postgres.enabled():  # an empty database (a server's starts as a migrated template's copy)
        postgres.database_for(tmp_path, migrated=False)
    first = cli("migrate", data_dir=tmp_path).stdout
    assert "m0001_initial" in first
    assert "nothing (up to date)" in cli("migrate", data_dir=tmp_path).stdout
    assert (tmp_path / "converger.db").exists() or postgres.enabled()


def test_bad_arguments_fail_cleanly(tmp_path: Path) -> None:
    for args in (("tenant", "create", "   "),
                 ("channel", "create", "--tenant", "00000000-0000-4000-8000-000000000000",
                  "--name", "x", "--type", "echo"),
                 ("channel", "create", "--tenant", "x", "--name", "x", "--config", "{nope"),
                 ("admin", "token", "create", "--name", " ")):
        proc = cli(*args, data_dir=tmp_path, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("converger: ") and "Traceback" not in proc.stderr


async def test_created_credentials_work(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    data = tmp_path / "data"
    tenant = json.loads(cli("tenant", "create", "acme", data_dir=data).stdout)
    assert tenant["name"] == "acme" and tenant["api_key"].startswith("cvk_")
    channel = json.loads(cli("channel", "create", "--tenant", tenant["id"], "--name", "hook",
                             "--type", "webhook", "--config", '{"url": "http://127.0.0.1:9/h"}',
                             data_dir=data).stdout)
    assert channel["secret"].startswith("whsec_") and channel["mode"] == "duplex"
    admin_token = cli("admin", "token", "create", "--name", "ci", data_dir=data).stdout.strip()
    assert admin_token.startswith("cva_")
    assert tenant["id"] in cli("tenant", "list", data_dir=data).stdout
    assert channel["id"] in cli("channel", "list", "--tenant", tenant["id"], data_dir=data).stdout

    with Server(data) as srv:
        api = Api(session, srv.url)
        admin = {"authorization": f"Bearer {admin_token}"}
        tenants = (await api.ok("GET", "/api/admin/tenants", headers=admin))["data"]
        assert tenant["id"] in {t["id"] for t in tenants}
        conv = await api.conversation(channel["token"])
        assert conv["channel_id"] == channel["id"]
        a = await api.post_activity(conv["id"], tenant["api_key"], text="from the CLI's key")
        assert a["seq"] == 1
        # The CLI's changes are audited as the system.
        entries = (await api.ok("GET", f"/api/admin/audit?resource_id={tenant['id']}",
                                headers=admin))["data"]
        assert [(e["actor_type"], e["action"]) for e in entries] == [("system", "create")]


async def test_serve_dev_prints_working_credentials(tmp_path: Path,
                                                    session: aiohttp.ClientSession) -> None:
    port = free_port()
    env = {**os.environ, "CONVERGER_SECRET_KEY": SECRET, "PYTHONUNBUFFERED": "1",
           **database_env(tmp_path / "d")}
    env.pop("CONVERGER_ADMIN_TOKEN", None)
    log = open(tmp_path / "dev.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--dev", "--data-dir", str(tmp_path / "d"),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        # Worker processes start side by side (CONVERGER_WORKERS=2 make test): more time.
        workers = os.environ.get("CONVERGER_WORKERS", "1")
        deadline = time.monotonic() + 20 * (int(workers) if workers.isdigit() else 1)
        while True:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
            try:
                with urllib.request.urlopen(base + "/livez", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        printed = (tmp_path / "dev.log").read_text()
        creds = {}
        for label, name in (("URL", "url"), ("API key", "api_key"), ("channel token", "token"),
                            ("admin token", "admin"), ("echo channel", "channel_id")):
            line = next(x for x in printed.splitlines() if x.strip().startswith(label))
            creds[name] = line.strip()[len(label):].strip()
        assert creds["url"] == base
        api = Api(session, base)
        conv = await api.conversation(creds["token"])
        assert conv["channel_id"] == creds["channel_id"]
        await api.post_activity(conv["id"], creds["api_key"], text="dev")
        # The dev channel is an echo channel: the bot's answer follows the message.
        deadline = time.monotonic() + 10
        while True:
            listed = await api.ok("GET", f"/api/v1/conversations/{conv['id']}/activities",
                                  headers=key(creds["api_key"]))
            if len(listed["data"]) >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert [(x["sender"], x["text"]) for x in listed["data"]] == [
            (listed["data"][0]["sender"], "dev"), ("bot", "dev")]
        await api.ok("GET", f"/api/v1/conversations/{conv['id']}", headers=tok(creds["token"]))
        await api.ok("GET", "/api/admin/tenants", headers={"authorization": f"Bearer {creds['admin']}"})
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
