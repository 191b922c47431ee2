"""Shared fixtures: one real server per test session (tests make their own tenants, so they
do not see each other), plus a fresh server for tests that need one to themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import Server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as s:
        yield s


@pytest.fixture(scope="session")
async def api(server: Server, session: aiohttp.ClientSession) -> Api:
    return Api(session, server.url)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own (for crash, restart and configuration tests). Started by the test."""
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()
