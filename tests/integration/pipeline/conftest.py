"""The broker pipeline's tests (``CONVERGER_PIPELINE=rabbitmq|nats``, docs/pipelines.md): real
brokers on loopback (tests/support/brokers.py), a real ``converger serve``, real ``converger
deliver`` processes, and a real webhook receiver that counts what it got by delivery id."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.brokers import Nats, Rabbit
from tests.support.deliver import Deliver
from tests.support.hold import Hold
from tests.support.server import open_database

Broker = Nats | Rabbit
__all__ = ["Broker", "Counting", "Deliver", "pipeline_env", "table", "until"]


@pytest.fixture(scope="module", params=["nats", "rabbitmq"])
def broker(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Broker]]:
    """A broker of each kind for a test module (a RabbitMQ node takes seconds to start); jobs a
    test leaves in it are not the next test's (their rows are in another database: they claim
    nothing, and are dropped)."""
    if request.param == "nats":
        if not Nats.available():
            pytest.skip("nats-server is not installed (tests/setup.sh installs it)")
        nats = Nats(tmp_path_factory.mktemp("nats")).start()
        yield "nats", nats
        nats.stop()
    else:
        if not Rabbit.available():
            pytest.skip("rabbitmq-server is not installed (tests/setup.sh installs it)")
        rabbit = Rabbit().start()
        yield "rabbitmq", rabbit
        rabbit.close()


def pipeline_env(kind: str, url: str, **extra: str) -> dict[str, str]:
    return {"CONVERGER_PIPELINE": kind, "CONVERGER_PIPELINE_URL": url, **extra}


class Counting:
    """A webhook receiver on loopback counting requests by ``webhook-id`` (the delivery id);
    ``fail_first[id]`` answers 500 that many times first."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.order: list[str] = []
        self.fail_first: dict[str, int] = {}
        self.failing = 0  # answer 500 to the next N requests (whatever their id)
        self.delay = 0.0  # seconds each answer takes (a slow receiver: attempts in flight)
        # Requests after the hold.after-th are left unanswered until release() (attempts in
        # flight a test can count on, whatever the machine's speed); `held` counts them.
        self.hold = Hold()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> Counting:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        did = request.headers.get("webhook-id", "")
        self.counts[did] += 1
        self.order.append(did)
        await self.hold.gate(self.total)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing > 0:
            self.failing -= 1
            return web.Response(status=500, text="nope")
        return web.Response(text="ok")

    @property
    def held(self) -> int:
        return self.hold.held

    def release(self) -> None:
        self.hold.release()

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def total(self) -> int:
        return len(self.order)


@pytest.fixture
async def counting() -> AsyncIterator[Counting]:
    r = await Counting().start()
    yield r
    await r.stop()


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def table(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = open_database(data_dir, readonly=True)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()
