"""Analytics with several worker processes (``--workers 3``, docs/analytics.md): the rollup
counters are written with each activity, whichever process took it, so the figures are exact;
the rollup job runs in the one process that holds the scheduler's lease, and its runs are
recorded under that process's pid."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.support.api import Api
from tests.support.server import Server, open_database

from .conftest import cluster_env


@pytest.fixture(scope="module")
def rollup_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("rollup-cluster"),
                 env=cluster_env(CONVERGER_ANALYTICS_INTERVAL="1")).start(timeout=60)
    yield srv
    srv.stop(timeout=40)


def _job_runs(srv: Server) -> list[tuple[int, int]]:
    conn = open_database(srv.data_dir, readonly=True)
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT pid, runs FROM job_runs WHERE name = 'analytics_rollup'")]
    finally:
        conn.close()


async def test_counters_are_exact_across_processes_and_one_process_rolls_up(
        rollup_cluster: Server, spread: object) -> None:
    api = Api(spread, rollup_cluster.url)  # type: ignore[arg-type]
    w = await api.setup("cluster-analytics")
    workers = set()
    for batch in range(4):
        results = await asyncio.gather(*(
            api.call("POST", f"/api/v1/conversations/{w['conversation']['id']}/activities",
                     headers={"x-api-key": w["api_key"]}, json={"text": f"m{batch}-{i}"})
            for i in range(10)))
        assert [r[0] for r in results] == [201] * 10
        workers |= {int(r[2]["x-converger-worker"]) for r in results}
    assert len(workers) > 1  # written by several processes
    data = (await api.ok("GET", "/api/v1/analytics?range=1h",
                         headers={"x-api-key": w["api_key"]}))["data"]
    assert data["totals"]["activities_out"] == 40
    assert data["conversations"][0]["activities"] == 40

    # The job runs (every second here) and only ever under one process's pid.
    pids = set(rollup_cluster.pids())
    deadline = time.monotonic() + 30
    runs: list[tuple[int, int]] = []
    seen = set()
    while time.monotonic() < deadline:
        runs = _job_runs(rollup_cluster)
        seen |= {pid for pid, _ in runs}
        if runs and runs[0][1] >= 3:
            break
        await asyncio.sleep(0.2)
    assert runs and runs[0][1] >= 3, runs
    assert len(seen) == 1 and seen <= pids, (seen, pids)
