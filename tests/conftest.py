"""Shared fixtures: one real server per test session (tests make their own tenants, so they
do not see each other), plus a fresh server for tests that need one to themselves."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.api import Api
from tests.support.server import Server, reap


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist makes `-n N` mean `--dist load`
def pytest_cmdline_main(config: pytest.Config) -> None:
    if config.getoption("numprocesses", None) and config.getoption("dist", "no") == "no":
        config.option.dist = "loadfile"  # `pytest -n 2` as `make test` runs it


def pytest_configure(config: pytest.Config) -> None:
    """With pytest-xdist (`make test` runs ``-n auto --dist loadfile``), a module's tests must
    stay in one worker, in order: several modules are scenarios on one module-scoped server
    (tests/integration/deploy/test_https_acme.py, the cluster's), and a module's servers and
    browsers should start once. ``--dist loadgroup``'s ``xdist_group`` marks are ignored under
    pytest 9 (pytest-xdist 3.8 renames node ids pytest no longer reads), so it spreads a module
    over the workers like ``load`` does: refuse those modes rather than fail at random."""
    dist = config.getoption("dist", "no")
    if config.getoption("numprocesses", None) and dist not in ("loadfile", "loadscope", "no"):
        raise pytest.UsageError(f"--dist {dist} splits test modules between workers: use "
                                f"--dist loadfile (the Makefile's `make test` does)")


_cpu: Any = None


def pytest_sessionstart() -> None:
    global _cpu
    if os.environ.get("CONVERGER_TEST_CPU_LOG"):  # per-module CPU (tests/support/cpulog.py)
        from tests.support.cpulog import Recorder

        _cpu = Recorder(os.environ["CONVERGER_TEST_CPU_LOG"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    if _cpu is not None:
        _cpu.item_done(item.nodeid.split("::")[0],
                       nextitem.nodeid.split("::")[0] if nextitem is not None else None)


def pytest_sessionfinish() -> None:
    """Kill what a test left running, in this process (each xdist worker has its own list)."""
    reap()


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
