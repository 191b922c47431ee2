"""Hole 5 (issue 13): one tenant must not drive the server's memory to gigabytes. Activities
are capped in size (413 ``activity_too_large``); the compatible list (up to 10,000 rows) also
stops at a bound on bytes."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.api import Api


async def test_activity_size_is_capped(api: Api) -> None:
    s = await api.setup("big")
    conv = s["conversation"]["id"]
    status, body, _ = await api.call(
        "POST", f"/api/v1/conversations/{conv}/activities", headers={"x-api-key": s["api_key"]},
        json={"text": "x", "metadata": {"blob": "m" * 100_000}})
    assert status == 413 and body["code"] == "activity_too_large", body
    status, body, _ = await api.call(
        "POST", f"/api/v1/conversations/{conv}/activities", headers={"x-api-key": s["api_key"]},
        json={"text": "t" * 70_000})
    assert status == 413 and body["code"] == "activity_too_large", body
    await api.post_activity(conv, s["api_key"], text="fine", metadata={"k": "v" * 1000})
    listed = await api.ok("GET", f"/api/v1/conversations/{conv}/activities",
                          headers={"x-api-key": s["api_key"]})
    assert [a["text"] for a in listed["data"]] == ["fine"]  # nothing of the refused ones


async def test_compatible_list_is_bounded_in_bytes(make_server: Any) -> None:
    srv = make_server(env={"CONVERGER_LIST_MAX_BYTES": "200000"})
    async with aiohttp.ClientSession() as session:
        api = Api(session, srv.url)
        s = await api.setup("list")
        conv = s["conversation"]["id"]
        for i in range(40):  # 40 × ~20 KB = 800 KB, four times the bound
            await api.post_activity(conv, s["api_key"], text=f"n{i}",
                                    metadata={"blob": "b" * 20_000})
        async with session.get(f"{srv.url}/api/v1/conversations/{conv}/activities",
                               headers={"x-api-key": s["api_key"]}) as r:
            raw = await r.read()
            assert r.status == 200
        import json

        items = json.loads(raw)["data"]
        assert [a["text"] for a in items] == [f"n{i}" for i in range(len(items))]  # the oldest
        assert 5 <= len(items) < 40 and len(raw) < 260_000
