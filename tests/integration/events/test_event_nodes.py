"""The event relay with several nodes on PostgreSQL (gateway/nodes.py): the relay runs on the
leader node only, and another node's commits wake it through PostgreSQL's ``NOTIFY
converger_feed`` (the feed reader's wake-up), not by its safety look — which this test sets to an
hour (``CONVERGER_EVENTS_POLL``), so the events it waits for can only come by the wake-up."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import postgres
from tests.support.api import Api
from tests.support.brokers import Nats
from tests.support.server import Server


async def _until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := await check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
    return got


async def test_another_nodes_commits_wake_the_relay_on_postgresql(tmp_path: Path) -> None:
    import nats

    if not Nats.available():
        pytest.fail("nats-server is missing: run tests/setup.sh")
    broker = Nats(tmp_path / "nats").start()
    url = postgres.shared().create_database("event_nodes")
    env = {"CONVERGER_DATABASE_URL": url, "CONVERGER_WORKERS": "1",
           "CONVERGER_EVENTS_URL": broker.url, "CONVERGER_EVENTS_POLL": "3600"}
    nodes = [Server(tmp_path / f"node{i}", env=env) for i in (1, 2)]
    try:
        for node in nodes:
            node.start(timeout=60)

        async def leader() -> Server | None:
            for node in nodes:
                checks = node.readiness()["checks"]
                if checks["node"]["leader"] and checks["events"].get("state") == "connected":
                    return node
            return None

        relay_node = await _until(leader, 60, "no node runs a connected relay")
        other = next(n for n in nodes if n is not relay_node)
        # The relay's idle look is an hour away from now on: what follows must wake it.
        async with aiohttp.ClientSession() as session:
            api = Api(session, other.url)
            s = await api.setup("nodes")
            conv = s["conversation"]["id"]
            posted = [(await api.post_activity(conv, s["api_key"], text=f"n{i}"))["id"]
                      for i in range(20)]

        nc = await nats.connect(broker.url)
        try:
            sub = await nc.jetstream().pull_subscribe("converger.>", durable="nodes",
                                                      stream="CONVERGER_EVENTS")
            got: list[dict[str, Any]] = []

            async def everything() -> bool:
                try:
                    batch = await sub.fetch(50, timeout=1)
                except TimeoutError:  # nats-py raises both its own and asyncio's
                    return False
                for msg in batch:
                    await msg.ack()
                    got.append(json.loads(msg.data))
                return sum(1 for m in got if m["type"] == "activity.created") >= len(posted)

            await _until(everything, 30, "the relay on the leader never heard the other node")
        finally:
            await nc.close()
        assert [m["type"] for m in got][0] == "conversation.created"
        acts = [m for m in got if m["type"] == "activity.created"]
        assert [m["data"]["id"] for m in acts] == posted
        assert [m["seq"] for m in acts] == list(range(1, 21))
        assert "events: relay starting" in relay_node.log()
        assert "events: relay starting" not in other.log()  # one relay: the leader's
    finally:
        for node in nodes:
            node.stop()
        broker.stop()
