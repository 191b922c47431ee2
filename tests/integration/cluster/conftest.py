"""A gateway of three worker processes (``--workers 3``) for the tests of this package, and
clients that spread their requests over the processes (a fresh connection per request)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import Server

WORKERS = 3
ENV = {"CONVERGER_WORKERS": str(WORKERS), "CONVERGER_WORKER_HEADER": "1"}


def cluster_env(**extra: str) -> dict[str, str]:
    return {**ENV, **extra}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("cluster"), env=cluster_env()).start(timeout=60)
    yield srv
    srv.stop(timeout=40)


@pytest.fixture
async def spread() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a new connection for every request: the listening socket is shared
    by the processes, so successive requests land on different ones."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0)) as s:
        yield s


@pytest.fixture
async def capi(cluster: Server, spread: aiohttp.ClientSession) -> Api:
    return Api(spread, cluster.url)


async def worker_of(session: aiohttp.ClientSession, url: str, **kw: Any) -> int:
    async with session.get(url, **kw) as r:
        return int(r.headers["x-converger-worker"])
