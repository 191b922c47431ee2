"""A server of its own: the generated secret key is kept in the data directory (tokens survive a
restart), committed activities survive a crash, and settings reach the server."""

from __future__ import annotations

import stat

import aiohttp

from tests.support.api import Api
from tests.support.server import Server

from .checks import key, problem, tok


async def test_generated_key_persists_and_201s_survive_a_crash(
    fresh_server: Server, session: aiohttp.ClientSession
) -> None:
    fresh_server.extra_env["CONVERGER_SECRET_KEY"] = ""  # unset: generate and keep one
    fresh_server.start()
    api = Api(session, fresh_server.url)
    s = await api.setup("crash")
    keyfile = fresh_server.data_dir / "secret_key"
    assert keyfile.exists() and stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    cid = s["conversation"]["id"]
    ids = [(await api.post_activity(cid, s["api_key"], text=str(i)))["id"] for i in range(30)]
    fresh_server.kill()  # SIGKILL: no shutdown hooks, nothing flushed by us
    fresh_server.start()
    listed = (await api.ok("GET", f"/api/v1/conversations/{cid}/activities",
                           headers=tok(s["channel_token"])))["data"]  # the old token still verifies
    assert [a["id"] for a in listed] == ids
    assert [a["seq"] for a in listed] == list(range(1, 31))
    nxt = await api.post_activity(cid, s["api_key"], text="after")
    assert nxt["seq"] == 31


async def test_max_body_setting(fresh_server: Server, session: aiohttp.ClientSession) -> None:
    fresh_server.extra_env["CONVERGER_MAX_BODY_BYTES"] = "1000"
    fresh_server.start()
    api = Api(session, fresh_server.url)
    s = await api.setup("small")
    path = f"/api/v1/conversations/{s['conversation']['id']}/activities"
    await api.post_activity(s["conversation"]["id"], s["api_key"], text="x" * 900)
    problem(await api.call("POST", path, json={"text": "x" * 1000}, headers=key(s["api_key"])),
            413, "error", "payload_too_large")
