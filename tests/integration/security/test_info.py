"""Hole 12 (issue 13): end-user tokens post as their user; the data directory and the files
holding data or keys are private; the demo page has the pages' CSP and frame headers."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import postgres
from tests.support.api import Api


async def test_user_tokens_post_as_their_user(api: Api) -> None:
    s = await api.setup("sender")
    conv = s["conversation"]["id"]
    token = (await api.ok("POST", "/api/v1/tokens", 201, json={
        "conversation_id": conv, "user_id": "customer-7"},
        headers={"x-channel-token": s["channel_token"]}))["token"]
    body = await api.ok("POST", f"/api/v1/conversations/{conv}/activities", 201,
                        json={"text": "refund approved", "sender": "support-agent"},
                        headers={"x-channel-token": token})
    assert body["data"]["sender"] == "customer-7"
    # The tenant's API key still names any sender (its agents and bots).
    a = await api.post_activity(conv, s["api_key"], text="hi", sender="support-agent")
    assert a["sender"] == "support-agent"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_directory_and_files_are_private(make_server: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old = data / "converger.db"  # a database left world-readable by an older version
    old.touch()
    old.chmod(0o644)
    srv = make_server(env={"CONVERGER_SECRET_KEY": ""})  # the key is generated into the dir
    async with aiohttp.ClientSession() as s:
        api = Api(s, srv.url)
        await api.setup("modes")  # writes: WAL and SHM exist
    assert _mode(data) == 0o700
    # The SQLite file and its WAL and shared memory (with PostgreSQL the database is not in the
    # directory: its files are the PostgreSQL server's to protect).
    files = ("secret_key",) if postgres.enabled() else (
        "converger.db", "converger.db-wal", "converger.db-shm", "secret_key")
    for name in files:
        path = data / name
        assert path.exists(), name
        assert _mode(path) & 0o077 == 0, (name, oct(_mode(path)))


async def test_demo_page_has_the_security_headers(api: Api) -> None:
    status, _, h = await api.call("GET", "/static/demo.html")
    assert status == 200
    csp = h["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'sha256-" in csp
    assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
