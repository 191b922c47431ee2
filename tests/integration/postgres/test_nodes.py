"""Three ``converger serve`` nodes on one PostgreSQL database (gateway/nodes.py), each a process of
its own with a data directory of its own: what one node accepts, the others' sockets hear, in
order; a tenant's key rotated on one node is refused by another; exactly one node runs the
singletons, and another takes them over when it is killed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.realtime.conftest import make_world
from tests.integration.realtime.phx import Phx
from tests.support import postgres
from tests.support.api import Api
from tests.support.server import Server

PATH = "/socket/websocket"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    url = postgres.shared().create_database("three_nodes")
    root = tmp_path_factory.mktemp("nodes")
    servers = [Server(root / f"node{i}", env={"CONVERGER_DATABASE_URL": url,
                                              "CONVERGER_WORKERS": "1"}) for i in (1, 2, 3)]
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture(scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _node(srv: Server) -> dict[str, Any]:
    return dict(srv.readiness()["checks"]["node"])


async def _until(predicate: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = await predicate()
        if got:
            return got
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_socket_on_node_1_hears_every_activity_posted_to_node_3_in_order(
        nodes: list[Server], session: aiohttp.ClientSession) -> None:
    one, _, three = nodes
    world = await make_world(Api(session, one.url))
    cid, key = world["conv_id"], world["api_key"]
    phx = await Phx.connect(session, one.ws_url, PATH, world["user_token"])
    await phx.join(f"conversation:{cid}")
    on_three = Api(session, three.url)
    posted = [(await on_three.post_activity(cid, key, text=f"n3-{i}"))["id"] for i in range(50)]
    got = await phx.events("new_activity", 50, timeout=20)
    assert [f.payload["id"] for f in got] == posted
    assert [f.payload["seq"] for f in got] == list(range(1, 51))
    await phx.close()


async def test_concurrent_posts_on_all_nodes_reach_a_socket_in_seq_order(
        nodes: list[Server], session: aiohttp.ClientSession) -> None:
    world = await make_world(Api(session, nodes[0].url))
    cid, key = world["conv_id"], world["api_key"]
    phx = await Phx.connect(session, nodes[1].ws_url, PATH, world["user_token"])
    await phx.join(f"conversation:{cid}")

    async def poster(srv: Server, p: int) -> None:
        api = Api(session, srv.url)
        for i in range(20):
            await api.post_activity(cid, key, text=f"p{p}-{i}")

    await asyncio.gather(*(poster(srv, p) for p, srv in enumerate(nodes * 2)))
    got = await phx.events("new_activity", 120, timeout=30)
    assert [f.payload["seq"] for f in got] == list(range(1, 121))
    await phx.close()


async def test_a_key_rotated_on_node_1_is_refused_by_node_3(
        nodes: list[Server], session: aiohttp.ClientSession) -> None:
    one, _, three = nodes
    s = await Api(session, one.url).setup("rotate-across")
    old = s["api_key"]
    cid = s["conversation"]["id"]
    on_three = Api(session, three.url)
    await on_three.post_activity(cid, old, text="cached on node 3")  # node 3 caches the key
    await Api(session, one.url).ok("POST", f"/api/admin/tenants/{s['tenant']['id']}/rotate-key",
                                   headers=Api(session, one.url).admin)

    async def refused() -> bool:
        status, _, _ = await on_three.call("GET", f"/api/v1/conversations/{cid}/activities",
                                           headers={"x-api-key": old})
        return status == 401

    await _until(refused, 5, "node 3 still takes the rotated key")


async def test_one_leader_and_another_takes_over_when_it_is_killed(
        nodes: list[Server], session: aiohttp.ClientSession) -> None:
    async def leaders() -> list[Server]:
        found = [s for s in nodes if s.proc and s.proc.poll() is None and _node(s)["leader"]]
        return found

    (leader,) = await _until(leaders, 10, "no node became the leader")
    ids = {_node(s)["node"] for s in nodes}
    assert len(ids) == 3
    leader.kill()  # SIGKILL: its connection closes, PostgreSQL releases the lock

    async def successor() -> list[Server]:
        found = await leaders()
        return found if found and leader not in found else []

    (new,) = await _until(successor, 15, "nobody took the leader lock over")
    assert new is not leader
    leader.start()  # back as a follower
    assert _node(leader)["leader"] is False or not _node(new)["leader"]


def test_each_node_has_its_own_data_directory(nodes: list[Server]) -> None:
    """Nothing is shared through the files: no node made a SQLite database."""
    for s in nodes:
        assert not (Path(s.data_dir) / "converger.db").exists()
