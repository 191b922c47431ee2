"""One gateway of the delivery tests' own: retry waits scaled down 1000× and a short attempt
timeout, so the retry schedule and timeouts are exercised without real waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.integration.delivery.receiver import Receiver
from tests.support.api import Api
from tests.support.server import Server

SCALE = 0.001
TIMEOUT = 1.0


@pytest.fixture(scope="session")
def delivery_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("delivery"), env={
        "CONVERGER_BACKOFF_SCALE": str(SCALE), "CONVERGER_WEBHOOK_TIMEOUT": str(TIMEOUT),
    }).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
async def dapi(delivery_server: Server, session: aiohttp.ClientSession) -> Api:
    return Api(session, delivery_server.url)


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def deliveries(api: Api, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return (await api.ok("GET", f"/api/admin/deliveries?limit=500&{query}", headers=api.admin))["data"]


async def wait_delivery(api: Api, activity_id: str, done: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Poll the management API until the activity's (single) delivery satisfies ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await deliveries(api, activity_id=activity_id)
        if rows and done(rows[0]):
            return rows[0]
        assert time.monotonic() < deadline, f"delivery not done in time: {rows}"
        await asyncio.sleep(0.02)


async def webhook_setup(api: Api, receiver: Receiver, name: str, **channel: Any) -> dict[str, Any]:
    """A tenant with a webhook channel pointing at ``receiver.url(name)``, and a conversation."""
    config = {"url": receiver.url(name), **channel.pop("config", {})}
    return await api.setup(name, type="webhook", config=config, **channel)
