"""A tier's ``retention_days`` on the real server (docs/admin.md#sla-tiers): activities posted
through the API while the server's clock (``CONVERGER_CLOCK_FILE``) stood 40 days back are
pruned by the server's own ``prune`` job (every second here) once the tenant is on a tier that
keeps 30 days — the recent ones stay, and a tenant on no tier keeps everything. What the client
sees is polled for, with a deadline (no sleeps)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import Server

from .checks import key


@pytest.fixture(scope="module")
def clock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    data = tmp_path_factory.mktemp("retention")
    clock = data / "clock"
    clock.write_text("0")
    srv = Server(data, env={"CONVERGER_CLOCK_FILE": str(clock),
                            "CONVERGER_PRUNE_INTERVAL": "1"}).start()
    yield srv, clock
    srv.stop()


async def _texts(api: Api, conv: str, api_key: str) -> list[str]:
    body = await api.ok("GET", f"/api/v1/conversations/{conv}/activities", headers=key(api_key))
    return [a["text"] for a in body["data"]]


def _set_clock(clock: Path, seconds: float) -> None:
    tmp = clock.with_suffix(".new")
    tmp.write_text(str(seconds))
    tmp.replace(clock)  # a new inode: every worker process reads it again


async def test_the_prune_job_applies_a_tiers_retention(clock_server: tuple[Server, Path]
                                                       ) -> None:
    srv, clock = clock_server
    async with aiohttp.ClientSession() as s:
        api = Api(s, srv.url)
        kept = await api.setup("retention-kept")
        free = await api.setup("retention-free")
        _set_clock(clock, -40 * 86400)  # 40 days ago
        for w in (kept, free):
            for i in range(3):
                await api.post_activity(w["conversation"]["id"], w["api_key"], text=f"old {i}")
        _set_clock(clock, 0)
        for w in (kept, free):
            await api.post_activity(w["conversation"]["id"], w["api_key"], text="new")
        assert await _texts(api, kept["conversation"]["id"], kept["api_key"]) == [
            "old 0", "old 1", "old 2", "new"]

        name = f"keep30-{uuid.uuid4().hex[:6]}"
        await api.ok("POST", "/api/admin/tiers", 201, headers=api.admin,
                     json={"name": name, "retention_days": 30})
        await api.ok("PUT", f"/api/admin/tenants/{kept['tenant']['id']}/tier",
                     headers=api.admin, json={"tier": name})
        deadline = time.monotonic() + 30
        texts: list[Any] = []
        while time.monotonic() < deadline:
            texts = await _texts(api, kept["conversation"]["id"], kept["api_key"])
            if texts == ["new"]:
                break
            await asyncio.sleep(0.1)
        assert texts == ["new"]
        # The tenant on no tier keeps its old activities.
        assert await _texts(api, free["conversation"]["id"], free["api_key"]) == [
            "old 0", "old 1", "old 2", "new"]
