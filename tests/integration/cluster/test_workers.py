"""Three worker processes behave as one gateway: sockets in every process hear every activity
posted through any process, in order and once; a rotated key is refused by all of them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.integration.realtime.conftest import user_token
from tests.integration.realtime.phx import Phx
from tests.support.api import Api
from tests.support.server import Server

from .conftest import WORKERS

PATH = "/socket/websocket"


async def _wait_sockets(server: Server, n: int, timeout: float = 20.0) -> dict[int, int]:
    """Sockets per worker pid, once ``/readyz`` counts ``n`` in all (heartbeats every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = {w["pid"]: w["sockets"] for w in server.workers()}
        if sum(counts.values()) >= n or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)


async def test_200_sockets_over_the_processes_hear_every_activity_in_order_once(
    cluster: Server, spread: aiohttp.ClientSession, capi: Api
) -> None:
    w = await capi.setup(name="fanout")
    cid, key = w["conversation"]["id"], w["api_key"]
    token = await user_token(capi, w["channel_token"], cid)
    topic = f"conversation:{cid}"
    sockets = []
    for _ in range(200):
        s = await Phx.connect(spread, cluster.ws_url, PATH, token)
        await s.join(topic)
        sockets.append(s)
    counts = await _wait_sockets(cluster, 200)
    assert sum(counts.values()) == 200, counts
    assert sum(1 for n in counts.values() if n) >= 2, f"sockets not spread: {counts}"

    posted_by: set[int] = set()

    async def poster(p: int) -> None:
        for i in range(10):
            async with spread.post(f"{cluster.url}/api/v1/conversations/{cid}/activities",
                                   json={"text": f"p{p}-{i}"}, headers={"x-api-key": key}) as r:
                assert r.status == 201, await r.text()
                posted_by.add(int(r.headers["x-converger-worker"]))

    await asyncio.gather(*(poster(p) for p in range(5)))
    assert len(posted_by) >= 2, f"posts not spread over the processes: {posted_by}"
    for s in sockets:
        got = await s.events("new_activity", 50, timeout=30)
        assert [f.payload["seq"] for f in got] == list(range(1, 51))
    for s in sockets[:20]:  # and nothing twice
        assert await s.quiet("new_activity", 0.05)
    for s in sockets:
        await s.close()


async def _pids_answering(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                          want: int, timeout: float = 10.0) -> dict[int, int]:
    """status per worker pid, asking until ``want`` distinct processes answered."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        async with session.get(url, headers=headers) as r:
            seen[int(r.headers["x-converger-worker"])] = r.status
    return seen


async def test_a_key_rotated_through_one_process_is_refused_by_all_within_a_second(
    cluster: Server, spread: aiohttp.ClientSession, capi: Api
) -> None:
    w = await capi.setup(name="rotate")
    cid, key = w["conversation"]["id"], w["api_key"]
    url = f"{cluster.url}/api/v1/conversations/{cid}/activities"
    # Every process has the key in its cache.
    warm = await _pids_answering(spread, url, {"x-api-key": key}, WORKERS)
    assert len(warm) == WORKERS and set(warm.values()) == {200}, warm
    rotated = await capi.ok("POST", f"/api/admin/tenants/{w['tenant']['id']}/rotate-key",
                            headers=capi.admin)
    done = time.monotonic()
    new_key = rotated["data"]["api_key"] if "data" in rotated else rotated["api_key"]
    late: list[tuple[int, float]] = []
    refused: set[int] = set()
    while len(refused) < WORKERS and time.monotonic() - done < 10:
        async with spread.get(url, headers={"x-api-key": key}) as r:
            pid, status, at = int(r.headers["x-converger-worker"]), r.status, time.monotonic() - done
        if status == 401:
            refused.add(pid)
        elif at > 1.0:
            late.append((pid, at))
    assert len(refused) == WORKERS, refused
    assert not late, f"the old key still worked after 1 s: {late}"
    fresh = await _pids_answering(spread, url, {"x-api-key": new_key}, WORKERS)
    assert set(fresh.values()) == {200}, fresh


async def test_readyz_lists_every_worker(cluster: Server) -> None:
    ready: dict[str, Any] = cluster.readiness()
    workers = ready["checks"]["workers"]
    assert workers["ok"] and workers["expected"] == WORKERS and workers["alive"] == WORKERS
    assert len({w["pid"] for w in workers["workers"]}) == WORKERS


async def test_a_tenant_disabled_through_one_process_loses_its_sockets_in_all(
    cluster: Server, spread: aiohttp.ClientSession, capi: Api
) -> None:
    w = await capi.setup(name="disable")
    cid = w["conversation"]["id"]
    token = await user_token(capi, w["channel_token"], cid)
    sockets = []
    for _ in range(30):
        s = await Phx.connect(spread, cluster.ws_url, PATH, token)
        await s.join(f"conversation:{cid}")
        sockets.append(s)
    deadline = time.monotonic() + 20  # the heartbeats (every 2 s) count these 30 only
    while sum((counts := {x["pid"]: x["sockets"] for x in cluster.workers()}).values()) != 30:
        assert time.monotonic() < deadline, counts
        await asyncio.sleep(0.2)
    assert sum(1 for n in counts.values() if n) >= 2, counts
    await capi.ok("PATCH", f"/api/admin/tenants/{w['tenant']['id']}", json={"status": "inactive"},
                  headers=capi.admin)
    for s in sockets:
        msg = await s.ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING), msg
